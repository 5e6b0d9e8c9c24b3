"""The `herald` command: one module per command group, shared options in `common`.

The entry point is `worker.cli:main`; `python -m worker.cli` runs the same.
"""

from worker.cli.main import main

__all__ = ["main"]
