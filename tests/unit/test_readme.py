"""The README's generated sections are the code's: settings field for field, the layout
package for package."""

from pathlib import Path

import pytest

from worker.cli.readme import (
    CONFIGURATION,
    LAYOUT,
    ROOT,
    Section,
    configuration_table,
    layout,
    render,
)
from worker.settings import Settings, env_name

README = ROOT / "README.md"


def test_readme_is_generated_from_the_code() -> None:
    text = README.read_text()
    assert render(text) == text, "README is stale: run `python -m worker.cli.readme`"


def test_every_setting_is_documented_once() -> None:
    table = configuration_table()
    for name, info in Settings.model_fields.items():
        assert info.description, f"{name} has no description"
        assert table.count(f"| `{env_name(name)}` |") == 1


def test_secrets_have_no_default_shown() -> None:
    row = next(line for line in configuration_table().splitlines() if "`SENTRY_DSN`" in line)
    assert row.split("|")[2].strip() == "—"


def test_every_package_is_in_the_layout_with_a_summary() -> None:
    text = layout()
    for init in sorted((ROOT / "worker").glob("*/__init__.py")):
        line = next((row for row in text.splitlines() if f" {init.parent.name}/ " in row), None)
        assert line is not None, f"{init.parent.name}/ missing from the layout"
        assert line.split("/", 1)[1].strip(), f"worker/{init.parent.name}/ has no docstring"


def test_the_layout_reads_a_new_package(tmp_path: Path) -> None:
    (tmp_path / "celeryconfig.py").write_text('"""Config."""\n')
    for top in ("worker", "tasks", "schedules"):
        (tmp_path / top).mkdir()
        (tmp_path / top / "__init__.py").write_text(f'"""The {top}."""\n')
    (tmp_path / "worker" / "fresh").mkdir()
    (tmp_path / "worker" / "fresh" / "__init__.py").write_text('"""Brand new. Details."""\n')
    assert "  fresh/              Brand new\n" in layout(tmp_path)


@pytest.mark.parametrize("section", [CONFIGURATION, LAYOUT], ids=lambda s: s.name)
def test_render_refuses_a_readme_without_markers(section: Section) -> None:
    with pytest.raises(ValueError, match="markers"):
        section.render("# no table here\n")


@pytest.mark.parametrize("section", [CONFIGURATION, LAYOUT], ids=lambda s: s.name)
def test_markers_survive_rendering(section: Section) -> None:
    once = section.render(f"a\n{section.start}\nold\n{section.end}\nb\n")
    assert once.startswith(f"a\n{section.start}\n")
    assert once.endswith(f"{section.end}\nb\n")
    assert section.render(once) == once
