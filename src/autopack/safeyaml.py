"""The one YAML loader for what people (and models) hand Autopack: plans and scripts.

PyYAML's ``safe_load`` refuses arbitrary objects but still trusts the document's shape:
nested aliases expand a few hundred bytes into gigabytes ("billion laughs"), deep
nesting ends in ``RecursionError``, and a repeated key silently replaces the first
(a phase's ``scope`` written twice takes the second). This loader refuses each of them
before anything is built, with the line and the field:

* anchors, aliases and merge keys (``&name``, ``*name``, ``<<``): none is needed to
  write a plan or a script, and refusing them all is simpler to trust than a budget on
  how far they may expand;
* a key repeated in one mapping, and keys that are not plain scalars;
* nesting deeper than :data:`MAX_DEPTH` collections;
* a text larger than :data:`MAX_BYTES`.

The events come from libyaml when PyYAML was built with it (about five times faster
than the pure-Python parser); composing and constructing are PyYAML's own safe ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, SequenceNode
from yaml.resolver import Resolver

MAX_BYTES = 1_000_000
"""Largest YAML text read, in UTF-8 bytes (the HTTP API's body cap is the same)."""
MAX_DEPTH = 32
"""Deepest nesting of mappings and sequences (a plan needs 7, a script about 12)."""

Loc = tuple[str | int, ...]


class YamlRefused(ValueError):
    """A YAML text this loader will not read; ``line`` is 1-based, ``loc`` the field."""

    def __init__(self, source: str, line: int, loc: Loc, message: str) -> None:
        self.source = source
        self.line = line
        self.loc = loc
        self.message = message
        super().__init__(f"{source}:{line}: {field_name(loc)}: {message}")


def field_name(loc: Loc) -> str:
    """``tiers[0].phases[2].scope`` for ``("tiers", 0, "phases", 2, "scope")``."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "-"


class _StrictComposer(Composer):
    """PyYAML's composer, refusing anchors, aliases, repeated keys and deep nesting."""

    source = "<yaml>"
    # supplied by the parser and the resolver each loader class mixes in
    check_event: Callable[..., bool]
    peek_event: Callable[[], Any]
    get_event: Callable[[], Any]
    resolve: Callable[..., str]

    def __init__(self) -> None:
        super().__init__()
        self._path: list[str | int] = []

    def _refuse(self, mark: Any, message: str) -> YamlRefused:
        return YamlRefused(self.source, mark.line + 1, tuple(self._path), message)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent) or event.anchor is not None:
            name = event.anchor
            raise self._refuse(
                event.start_mark,
                f"anchors and aliases (&{name}, *{name}) are not allowed; write the value out",
            )
        collection = isinstance(event, SequenceStartEvent | MappingStartEvent)
        if collection and len(self._path) >= MAX_DEPTH:
            raise self._refuse(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
        return cast(Node, super().compose_node(parent, index))  # None only at stream end

    def compose_sequence_node(self, anchor: Any) -> SequenceNode:
        start = self.get_event()
        tag = start.tag
        if tag is None or tag == "!":
            tag = self.resolve(SequenceNode, None, start.implicit)
        node = SequenceNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        while not self.check_event(SequenceEndEvent):
            self._path.append(len(node.value))
            node.value.append(self.compose_node(node, len(node.value)))
            self._path.pop()
        node.end_mark = self.get_event().end_mark
        return node

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        start = self.get_event()
        tag = start.tag
        if tag is None or tag == "!":
            tag = self.resolve(MappingNode, None, start.implicit)
        node = MappingNode(tag, [], start.start_mark, None, flow_style=start.flow_style)
        seen: dict[str, int] = {}
        while not self.check_event(MappingEndEvent):
            event = self.peek_event()
            if not isinstance(event, ScalarEvent):
                raise self._refuse(
                    event.start_mark, "a key must be a plain value, not a collection"
                )
            key = self.compose_node(node, None)
            name = str(key.value)
            self._path.append(name)
            if key.tag == "tag:yaml.org,2002:merge":
                raise self._refuse(key.start_mark, "merge keys (<<) are not allowed")
            if name in seen:
                raise self._refuse(
                    key.start_mark, f"key {name!r} repeats (first on line {seen[name]})"
                )
            seen[name] = key.start_mark.line + 1
            value = self.compose_node(node, key)
            self._path.pop()
            node.value.append((key, value))
        node.end_mark = self.get_event().end_mark
        return node


class _PyLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    _StrictComposer,
    SafeConstructor,
    Resolver,
):
    """The pure-Python parser under the strict composer."""

    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _StrictComposer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


def _loader_class() -> type:
    try:
        from yaml.cyaml import CParser  # type: ignore[attr-defined]
    except ImportError:  # PyYAML built without libyaml
        return _PyLoader

    class _CLoader(_StrictComposer, CParser, SafeConstructor, Resolver):
        """libyaml's events under the strict composer (its own composer is not used)."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _StrictComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    return _CLoader


_Loader = _loader_class()


def load_yaml(text: str, source: str) -> tuple[Any, Node | None]:
    """The data of one YAML document and its node tree (for line numbers).

    Raises :class:`YamlRefused` for what this module refuses and ``yaml.YAMLError`` for
    text that is not YAML.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise YamlRefused(source, 1, (), f"{size:,} bytes; the limit is {MAX_BYTES:,}")
    try:
        return _load(_Loader, text, source)
    except yaml.YAMLError as error:
        # libyaml (from 0.2.6) stops at 1000 nested flow collections while its scanner
        # looks ahead, before this composer sees the 33rd level; the pure-Python parser
        # has no such limit, so it reaches the composer's refusal and names the field.
        if _Loader is _PyLoader or "maximum nesting depth" not in str(error):
            raise
        return _load(_PyLoader, text, source)


def _load(loader_class: type, text: str, source: str) -> tuple[Any, Node | None]:
    loader = loader_class(text)
    loader.source = source
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, node
