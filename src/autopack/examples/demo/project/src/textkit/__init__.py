"""Small text utilities."""

from textkit.stats import char_count, word_count, words

__all__ = ["char_count", "word_count", "words"]
