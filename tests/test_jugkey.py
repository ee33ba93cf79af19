"""jug's result keys, pinned: vectors observed from jug 2.7.0 (also compared with a running jug in test_jug.py)."""
from __future__ import annotations

import math
import sys
import types

import pytest

import taskflow.jug as jug
from taskflow.jug.io import NoLoad
from taskflow.jug.task import Tasklet
from taskflow.jugkey import NotComputable, _Keys, task_key


@pytest.fixture
def simple(monkeypatch):
    """A module `simple` with `sum2` and a TaskGenerator `double`, as in jug's simple.py jugfile."""
    module = types.ModuleType("simple")

    def sum2(a, b):
        return a + b

    def double(x):
        return 2 * x

    for f in (sum2, double):
        f.__module__, f.__qualname__ = "simple", f.__name__
        setattr(module, f.__name__, f)
    module.double = jug.TaskGenerator(double)
    monkeypatch.setitem(sys.modules, "simple", module)
    return module


@pytest.mark.parametrize("value, key", [
    ({"b": 2, "a": [1.5, None, True]}, "f0c4659686d23893c189e8bf11bd0b2c6da45498"),
    ({1, 2, 3}, "1d705790982e464055df9948f51b7130c394fa28"),
    (frozenset({"x"}), "5e8c60512bfb1ddf21dee69de411ec48acdb4ffd"),
    (b"by", "cd7577f849a3a068da3f100efa82d6d8d97254c0"),
    (range(4, 8, 2), "983ed1ed4d000619b75e78ec2a2fa29972e03f06"),
])
def test_hash_one_of_plain_values(value, key):
    assert _Keys({}).digest(value).decode() == key


def test_keys_of_tasks_elements_tasklets_and_function_arguments(simple):
    t = jug.Task(simple.sum2, 4, b=3)
    assert task_key(t) == "ad946b9d536d6bdca39c2a85c2760634efd8b7a5"
    keys = _Keys({})
    assert keys.special(Tasklet(t, math.floor)).decode() == "ee593c0b58984fd9264b198367e37f3ebd994e5e"
    assert keys.special(t[0]).decode() == "13a5645a61d921871b8b42cc7df101ab109d258d"
    assert keys.special(t[t]).decode() == "1fcb9b2f9581fe52618e8a1b18def5d80f9167f9"
    assert keys.special(NoLoad(t)).decode() == "43effe6a475aec653a13d292bc5a728e813f2a09"
    # A TaskGenerator and a builtin as arguments: pickled by reference.
    assert task_key(jug.Task(simple.sum2, simple.double, math.floor)) == "2fd843f9d03a8f1c777660212418247b5c8855d6"


def test_what_is_not_exactly_computable_is_refused(simple):
    import taskflow

    np = pytest.importorskip("numpy")
    for t, reason in [
        (jug.Task(simple.sum2, np.arange(3), 1), "depends on more than pickle"),
        (jug.Task(simple.sum2, Tasklet(jug.Task(simple.sum2, 1, 2), lambda x: x), 1), "lambda"),
        (jug.Task(simple.sum2, 1j, 1), "depends on more than pickle"),
        (taskflow.Task(simple.sum2, 1, 2), "not declared through jug's API"),
    ]:
        with pytest.raises(NotComputable, match=reason):
            task_key(t)
