"""The docs keep up with the code: every CLI option and every table column is documented."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from cli.main import build_parser
from pipeline.schema import H3_COLUMNS, TABLES

DOCS = Path(__file__).resolve().parents[1] / "docs"
README = Path(__file__).resolve().parents[1] / "README.md"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_cli_option_is_documented(command: str) -> None:
    text = (DOCS / "cli.md").read_text()
    section = text.split(f"## `uncia {command}")[1].split("\n## ")[0]
    for action in _subcommands()[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        names = action.option_strings or [action.metavar or action.dest]
        assert any(f"`{n}" in section for n in names), f"uncia {command} {names} undocumented"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_column_is_documented(table: str) -> None:
    text = (DOCS / "schema.md").read_text()
    section = text.split(f"## {table}\n")[1].split("\n## ")[0]
    documented = set(re.findall(r"^\| `([^`]+)`", section, flags=re.M))
    for column in TABLES[table].names:
        if column in H3_COLUMNS:
            assert "h3_r5" in documented, f"{table}: H3 columns undocumented"
            continue
        assert column in documented, f"{table}.{column} is not documented in docs/schema.md"


def test_readme_gives_the_two_commands_first() -> None:
    first_screen = "\n".join(README.read_text().splitlines()[:40])
    assert "make demo" in first_screen and "make test" in first_screen
