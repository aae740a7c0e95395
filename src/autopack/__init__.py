"""Autopack: an autonomous build framework. See README.md and docs/INDEX.md."""

__version__ = "0.1.0"
