"""The README's configuration table is the settings model's, field for field."""

from pathlib import Path

import pytest

from worker.cli.settings_doc import END, START, configuration_table, render
from worker.settings import Settings, env_name

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_table_is_generated_from_the_settings_model() -> None:
    text = README.read_text()
    assert render(text) == text, "README is stale: run `python -m worker.cli.settings_doc`"


def test_every_setting_is_documented_once() -> None:
    table = configuration_table()
    for name, info in Settings.model_fields.items():
        assert info.description, f"{name} has no description"
        assert table.count(f"| `{env_name(name)}` |") == 1


def test_secrets_have_no_default_shown() -> None:
    row = next(line for line in configuration_table().splitlines() if "`SENTRY_DSN`" in line)
    assert row.split("|")[2].strip() == "—"


def test_render_refuses_a_readme_without_markers() -> None:
    with pytest.raises(ValueError, match="markers"):
        render("# no table here\n")


def test_markers_survive_rendering() -> None:
    once = render(f"a\n{START}\nold\n{END}\nb\n")
    assert once.startswith(f"a\n{START}\n| variable |")
    assert once.endswith(f"{END}\nb\n")
    assert render(once) == once
