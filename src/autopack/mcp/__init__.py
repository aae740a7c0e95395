"""Autopack over the Model Context Protocol: the server agents connect to
(``autopack mcp`` over stdio, ``/mcp`` in ``autopack serve``)."""
