"""What the developer docs name exists: docs/architecture.md's modules, bench/profile_tasks.py's steps."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "taskflow"


def _exists(name: str) -> bool:
    """A module the doc names: from the repository's root, from taskflow/, or as a bare file name
    anywhere in taskflow/ or tests/ (the doc says `claims.py` in a paragraph about stores/folder/)."""
    return ((ROOT / name).exists() or (PACKAGE / name).exists()
            or ("/" not in name and any(p for folder in (PACKAGE, ROOT / "tests") for p in folder.rglob(name))))


def test_every_module_the_architecture_doc_names_exists():
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"([\w/]+\.py)\b", text))
    assert named, "the doc names modules"
    assert sorted(n for n in named if not _exists(n)) == []


def test_every_step_profile_tasks_reports_is_a_function_that_exists():
    tree = ast.parse((ROOT / "bench" / "profile_tasks.py").read_text())
    steps = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "STEPS" for t in node.targets))
    missing = []
    for entry in ast.literal_eval(steps):
        _label, path, function = entry
        if path == "~":  # a built-in, named as cProfile names it
            continue
        defined = {n.name for n in ast.walk(ast.parse((ROOT / path).read_text()))
                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if function not in defined:
            missing.append(f"{path}:{function}")
    assert missing == []
