"""Counting words and characters."""


def words(text: str) -> list[str]:
    """The words of a text, split on whitespace; hyphenated words stay whole."""
    return text.split()


def word_count(text: str) -> int:
    """How many words a text has."""
    return len(words(text))


def char_count(text: str, spaces: bool = True) -> int:
    """How many characters a text has, optionally without whitespace."""
    if spaces:
        return len(text)
    return sum(1 for ch in text if not ch.isspace())
