"""Data flows one way through the layers (docs/architecture.md):

    server (HTTP, routing, auth) -> api -> expressions, partiql, model -> storage

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
    "api": ("shoal.server", "shoal.auth", "shoal.cli", "shoal.demo", "shoal.testing"),
    "expressions": ("shoal.server", "shoal.auth", "shoal.api", "shoal.storage"),
    "partiql": ("shoal.server", "shoal.auth", "shoal.api", "shoal.storage"),
    "model": ("shoal.server", "shoal.auth", "shoal.api", "shoal.storage", "shoal.expressions"),
    "storage": ("shoal.server", "shoal.auth", "shoal.api", "shoal.expressions", "shoal.partiql"),
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
