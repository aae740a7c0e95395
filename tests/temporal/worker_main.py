"""``autopack worker`` as a script, so tests can start (and SIGKILL) worker processes."""

import typer

from autopack.engine.worker import worker

if __name__ == "__main__":
    typer.run(worker)
