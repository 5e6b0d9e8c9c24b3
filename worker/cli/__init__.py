"""The `herald` command: one module per command group, shared options in `common`.

The entry point is `worker.cli:main` (the group defined in `root`); `python -m worker.cli`
runs the same. `main` is looked up lazily, so importing one module of this package (say
`worker.cli.readme`) does not import every command.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "main":
        from worker.cli.root import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
