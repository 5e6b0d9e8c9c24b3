"""The README's generated sections, so they cannot drift from the code.

* the configuration table, from the settings model, field for field;
* the layout, from the first docstring line of every package and root module.

`python -m worker.cli.readme` rewrites both between their markers in README.md; a unit
test fails when the README differs from what this produces.
"""

from __future__ import annotations

import ast
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from worker.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
#: The layout's name column and line width (the README's code blocks stay readable).
INDENT, WIDTH = 22, 96

#: Folders without a Python docstring to read, described here once.
FOLDERS = {
    "migrations": "Alembic migrations (the tables are a contract: DESIGN.md)",
    "bench": "benchmarks (`make bench`): JSON results and a table, baselines in the same run",
    "deploy": "Prometheus alert rules and a Grafana dashboard",
    "docs": "RELIABILITY.md and the reference the README links to",
    "tests/unit": "pure logic, no server",
    "tests/integration": "real Redis, PostgreSQL, RabbitMQ and worker processes",
    "tests/chaos": "fault scenarios (bounded in `make test`, full in `make chaos`)",
    "tests/fixtures": "every helper and fixture the tests share",
}


@dataclass(frozen=True)
class Section:
    """A generated part of the README: the text between two markers."""

    name: str
    generate: Callable[[], str]

    @property
    def start(self) -> str:
        return f"<!-- {self.name}:start (python -m worker.cli.readme) -->"

    @property
    def end(self) -> str:
        return f"<!-- {self.name}:end -->"

    def render(self, readme: str) -> str:
        """`readme` with the text between the markers replaced by what is generated now."""
        head, start, rest = readme.partition(self.start)
        _, end, tail = rest.partition(self.end)
        if not start or not end:
            raise ValueError(f"README lacks the markers {self.start!r} … {self.end!r}")
        return f"{head}{self.start}\n{self.generate()}\n{self.end}{tail}"


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


def layout(root: Path = ROOT) -> str:
    """A tree of the code: each package and root module with its docstring's first line."""
    lines = ["```", _row("celeryconfig.py", _summary(root / "celeryconfig.py"))]
    for top in ("worker", "tasks", "schedules"):
        lines.append(_row(f"{top}/", _summary(root / top / "__init__.py")))
        for path in sorted((root / top).iterdir()):
            if path.name.startswith(("_", ".")):
                continue
            if path.is_dir() and (path / "__init__.py").exists():
                lines.append(_row(f"  {path.name}/", _summary(path / "__init__.py")))
            elif path.suffix == ".py" and top == "worker":
                lines.append(_row(f"  {path.name}", _summary(path)))
    lines += [_row(f"{name}/", text) for name, text in FOLDERS.items()]
    lines.append("```")
    return "\n".join(lines)


def _row(name: str, text: str) -> str:
    lines = textwrap.wrap(text, width=WIDTH - INDENT) or [""]
    rest = [" " * INDENT + line for line in lines[1:]]
    return "\n".join([f"{name:<{INDENT}}{lines[0]}".rstrip(), *rest])


def _summary(path: Path) -> str:
    """The first sentence of a module's docstring ('' when it has none)."""
    doc = ast.get_docstring(ast.parse(path.read_text())) if path.exists() else None
    first = " ".join((doc or "").split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".")


CONFIGURATION = Section("configuration-table", configuration_table)
LAYOUT = Section("layout", layout)
SECTIONS = (CONFIGURATION, LAYOUT)


def render(readme: str) -> str:
    for section in SECTIONS:
        readme = section.render(readme)
    return readme


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "README.md")
    path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
