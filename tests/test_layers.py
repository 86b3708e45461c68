"""Imports run downward: workflows import nothing of ours outside workflows, the
activities neither the composition root nor the web, the composition root no web
module, and no production module the bench code; the workflow id is spelled once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("workflows", "activities", "db", "web", "aftersales", "simulators", "bench")


def imports(package: str) -> list[tuple[str, int, str, bool]]:
    """(file, line, imported module, inside a function) for every import of ours in the
    package, at any depth (functions, `with` blocks)."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = [n for n in ast.walk(tree)
                     if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        nested = {id(inner) for f in functions for inner in ast.walk(f)}
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in OURS:
                    found.append((str(path.relative_to(ROOT)), node.lineno, name,
                                  id(node) in nested))
    return found


def offending(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{file}:{line} imports {name}" for file, line, name, _ in imports(package)
            if name.split(".")[0] in forbidden]


def test_workflows_import_nothing_of_ours_outside_workflows():
    assert offending("workflows", tuple(p for p in OURS if p != "workflows")) == []


def test_activities_import_neither_the_composition_root_nor_the_web():
    assert offending("activities", ("aftersales", "web", "bench", "simulators")) == []


def test_the_composition_root_imports_no_web_module():
    assert offending("aftersales", ("web",)) == []


@pytest.mark.parametrize("package", ["workflows", "activities", "db", "web", "aftersales"])
def test_production_code_does_not_import_the_benches(package):
    allowed = [(f, n) for f, _, n, inside in imports(package)
               if f == "aftersales/cli.py" and inside]
    found = [f"{f}:{line} imports {name}" for f, line, name, _ in imports(package)
             if name.split(".")[0] == "bench" and (f, name) not in allowed]
    assert found == []


def test_the_database_layer_imports_only_the_case_contracts_and_vocabulary():
    assert [f"{f}:{line} imports {name}" for f, line, name, _ in imports("db")
            if name.split(".")[0] != "db"
            and name not in ("workflows.case.contracts", "workflows.case.vocabulary")] == []


def test_the_workflow_id_is_spelled_in_one_place():
    spelled = []
    for package in ("workflows", "activities", "db", "web", "aftersales", "bench"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and node.value.startswith("case-"):
                    spelled.append(str(path.relative_to(ROOT)))
    assert spelled == ["workflows/case/contracts.py"]
