"""Data flows one way through the layers (docs/architecture.md):

    server (HTTP, routing, auth) -> metrics, capacity -> api -> expressions, partiql, model -> storage

A module may import its own layer and those below it, never one above: the
API does not import the server or its authorization, and the pure layers
import neither the API nor storage.  Checked on every import statement,
including those inside functions."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "shoal"

# What each package may not import.
FORBIDDEN = {
    "api": ("shoal.server", "shoal.auth", "shoal.cli", "shoal.demo", "shoal.testing", "shoal.metrics",
            "shoal.capacity", "shoal.autoscaling"),
    "capacity": ("shoal.server", "shoal.auth", "shoal.cli", "shoal.demo", "shoal.testing"),
    "autoscaling": ("shoal.server", "shoal.auth", "shoal.cli", "shoal.demo", "shoal.testing"),
    "metrics": ("shoal.server", "shoal.auth", "shoal.cli", "shoal.demo", "shoal.testing"),
    "expressions": ("shoal.server", "shoal.auth", "shoal.api", "shoal.storage", "shoal.metrics"),
    "partiql": ("shoal.server", "shoal.auth", "shoal.api", "shoal.storage", "shoal.metrics"),
    "model": ("shoal.server", "shoal.auth", "shoal.api", "shoal.storage", "shoal.expressions", "shoal.metrics"),
    "storage": ("shoal.server", "shoal.auth", "shoal.api", "shoal.expressions", "shoal.partiql", "shoal.metrics"),
}


def imports(path: pathlib.Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_layer_imports_one_above_it(package):
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imports(path):
            if module.startswith(FORBIDDEN[package]):
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


# DynamoDB's two most common error heads, written once (shoal.errors): a
# second copy could drift from the first in one character, which SDK users'
# error matching would notice.
_ONCE = ("One or more parameter values were invalid", "validation error detected", "validation errors detected",
         "validation errors? detected")


def test_error_texts_are_built_in_one_place():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "errors.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and any(text in node.value for text in _ONCE)):
                wrong.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {node.value[:60]!r}")
    assert not wrong, "use shoal.errors.INVALID_PARAMETERS / validation_errors:\n" + "\n".join(wrong)
