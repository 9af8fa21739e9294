"""The API contract has one home (codebase_indexer/contract.py) and agrees with the CRDs.

Copies of the group, version, plurals, labels and the Secret key in the gateway, the operator
and the test support code had to be kept equal by hand; one that drifted would make the gateway
create or read objects the operator never sees.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from codebase_indexer import contract
from tests.support.crds import crds

ROOT = Path(__file__).resolve().parents[2]
CODE = [ROOT / "mcp_gateway", ROOT / "operator", ROOT / "indexer_image", ROOT / "tests" / "support"]
HOME = ROOT / "indexer_image" / "codebase_indexer" / "contract.py"
# Literal text that only the contract may spell out.
CONTRACT_WORDS = (contract.GROUP, contract.PROJECTS, contract.RUNS, contract.DATABASE_PREFIX)


@pytest.mark.parametrize("kind, plural", [(contract.PROJECT_KIND, contract.PROJECTS),
                                          (contract.RUN_KIND, contract.RUNS)])
def test_the_crds_define_the_contracts_names(kind, plural):
    spec = crds()[kind]["spec"]
    assert spec["group"] == contract.GROUP and spec["names"]["plural"] == plural
    assert contract.VERSION in [version["name"] for version in spec["versions"]]


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes: prose may name the API."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def restatements(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = _docstrings(tree)
    return [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and any(word in node.value for word in CONTRACT_WORDS)]


def test_no_module_restates_the_contract():
    sources = [path for folder in CODE for path in folder.rglob("*.py")
               if path != HOME and ".venv" not in path.parts]
    assert len(sources) > 30
    assert [line for path in sources for line in restatements(path)] == []
