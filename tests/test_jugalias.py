"""`import jug` means taskflow.jug only inside jug_alias(), and nothing of it stays after."""
from __future__ import annotations

import importlib
import sys
import types

import pytest

from taskflow.errors import JugImportError
from taskflow.jugalias import active, jug_alias


def _jug_modules() -> dict:
    return {n: m for n, m in sys.modules.items() if n == "jug" or n.startswith("jug.")}


def test_inside_the_alias_jug_is_taskflow_jug_and_afterwards_nothing_is_left():
    before = _jug_modules()
    with jug_alias():
        assert active()
        import jug
        import jug.mapreduce
        from jug.hooks.exit_checks import exit_after_n_tasks
        assert jug.__name__ == "taskflow.jug"
        assert jug.mapreduce.__name__ == "taskflow.jug.mapreduce"
        assert exit_after_n_tasks.__module__ == "taskflow.jug.hooks.exit_checks"
        assert callable(jug.barrier)  # the function, not the submodule of that name
        with jug_alias():  # re-entrant
            assert importlib.import_module("jug.task").__name__ == "taskflow.jug.task"
        assert sys.modules["jug"] is jug
    assert not active()
    assert _jug_modules() == before
    assert importlib.import_module("taskflow.jug").__spec__.name == "taskflow.jug"


def test_a_real_jug_is_put_aside_and_back():
    real, real_task = types.ModuleType("jug"), types.ModuleType("jug.task")
    saved = _jug_modules()
    sys.modules.update({"jug": real, "jug.task": real_task})
    try:
        with jug_alias():
            import jug
            import jug.task
            assert jug.__name__ == "taskflow.jug" and jug.task.__name__ == "taskflow.jug.task"
        assert sys.modules["jug"] is real and sys.modules["jug.task"] is real_task
    finally:
        for name in list(_jug_modules()):
            del sys.modules[name]
        sys.modules.update(saved)


def test_an_uncovered_submodule_is_an_import_error_naming_it():
    with jug_alias():
        with pytest.raises(JugImportError, match=r"module jug\.backends is not covered .* --store"):
            importlib.import_module("jug.backends.redis_store")
        with pytest.raises(ImportError):  # code that tries jug's optional parts and falls back still can
            import jug.subcommands  # noqa: F401
    assert "jug" not in sys.modules
