"""The README's configuration table, generated from the settings model so it cannot drift.

`python -m worker.cli.settings_doc` rewrites the table between the markers in README.md;
a unit test fails when the README's table differs from what this produces.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from worker.settings import Settings, env_name

START = "<!-- configuration-table:start (python -m worker.cli.settings_doc) -->"
END = "<!-- configuration-table:end -->"


def configuration_table() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        rows.append(f"| `{env_name(name)}` | {_default(info)} | {_cell(info.description or '')} |")
    return "\n".join(rows)


def _default(info: FieldInfo) -> str:
    value: Any = info.default
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "`on`" if value else "`off`"
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    if isinstance(value, Enum):
        value = value.value
    return f"`{_cell(str(value))}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(readme: str) -> str:
    """`readme` with the text between the markers replaced by the current table."""
    head, start, rest = readme.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"README lacks the markers {START!r} … {END!r}")
    return f"{head}{START}\n{configuration_table()}\n{END}{tail}"


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
