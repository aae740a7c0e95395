"""Pull requests of run branches on GitHub and GitLab: ``autopack pr`` (see README.md)."""
