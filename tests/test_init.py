"""`taskflow/__init__.py` is the public API: complete `__all__`, no name shadowing a module."""
from __future__ import annotations

import ast
import pathlib
import pkgutil

import taskflow

INIT = pathlib.Path(taskflow.__file__)


def _names_bound_in_init() -> set[str]:
    names = set()
    for node in ast.parse(INIT.read_text()).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_every_name_in_all_exists():
    missing = [name for name in taskflow.__all__ if not hasattr(taskflow, name)]
    assert not missing
    assert len(set(taskflow.__all__)) == len(taskflow.__all__)


def test_every_public_name_defined_in_init_is_in_all():
    public = {n for n in _names_bound_in_init() if not n.startswith("_")} - {"annotations"}
    assert public - set(taskflow.__all__) == set()
    assert "map" in taskflow.__all__ and "status" in taskflow.__all__


def test_no_public_name_shadows_a_module_of_the_package():
    modules = {m.name for m in pkgutil.iter_modules(taskflow.__path__)}
    assert not modules & set(taskflow.__all__)
    assert not modules & _names_bound_in_init()


def test_status_is_the_function_and_its_module_stays_importable():
    import taskflow.statusreport

    assert callable(taskflow.status)
    assert taskflow.status is taskflow.statusreport.status
