"""``python -m autopack``: the same as the ``autopack`` command."""

from autopack.cli import main

main()
