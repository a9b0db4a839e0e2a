"""The docs keep up with the code: every CLI command and option and every table column is
documented, every command is tested the way its docs show it first, and the README's layout
names every module."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from cli.main import build_parser
from pipeline.schema import H3_COLUMNS, TABLES

DOCS = Path(__file__).resolve().parents[1] / "docs"
README = Path(__file__).resolve().parents[1] / "README.md"
DEFAULTS_TESTS = Path(__file__).with_name("test_cli_defaults.py")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_command_is_documented_and_run_with_only_its_required_arguments(
    command: str,
) -> None:
    assert f"## `uncia {command}" in (DOCS / "cli.md").read_text(), f"uncia {command} undocumented"
    tree = ast.parse(DEFAULTS_TESTS.read_text())
    tests = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    wanted = f"test_uncia_{command.replace('-', '_')}_with_only_its_required_arguments"
    assert wanted in tests, f"uncia {command}: no {wanted} in tests/{DEFAULTS_TESTS.name}"


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


def test_readme_layout_names_every_package_and_module() -> None:
    text = README.read_text()
    layout = text[text.index("## Layout") :]
    layout = layout[: layout.index("\n## ", 1)]
    named = set(re.findall(r"[A-Za-z_]\w*", layout))
    root = README.parent
    missing = []
    for package in ("cli", "dashboard", "pipeline"):
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            module = parts[-1]
            if module in ("__init__", "__main__"):
                module = parts[-2]
            if module not in named:
                missing.append(str(path.relative_to(root)))
    assert missing == [], f"README's layout section does not name {missing}"
