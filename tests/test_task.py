"""Declaring tasks through the Python API."""
from __future__ import annotations

import pytest

import taskflow
from taskflow import Task, TaskElement, TaskGenerator, iteratetask
from taskflow.task import Declarations, activate


def add(a, b=0):
    return a + b


@TaskGenerator
def gen(x):
    return [x, x + 1]


def test_task_names_and_declaration_order():
    declared = Declarations()
    previous = activate(declared)
    try:
        t1 = Task(add, 1, b=2)
        t2 = gen(5)
        t3 = Task(add, t1, t2[0])
        Task(add, 1, b=2)  # the same call again is the same task
    finally:
        activate(previous)
    assert t1.name == "test_task.add" and t2.name == "test_task.gen"
    assert list(declared.tasks.values()) == [t1, t2, t3]
    assert set(t3.deps) == {t1, t2}


def test_task_generator_keeps_the_function_identity():
    assert gen.__name__ == "gen" and gen.f(1) == [1, 2]
    assert isinstance(gen(1), Task)
    assert TaskGenerator(gen).name == gen.name


def test_elements_and_iteratetask():
    t = gen(3)
    first, second = iteratetask(t, 2)
    assert isinstance(first, TaskElement) and first.path == (0,)
    nested = t[1]["key"][2]
    assert nested.path == (1, "key", 2) and nested.task is t
    assert "gen" in repr(nested)
    assert t[0:1].hash != t[0].hash
    with pytest.raises(TypeError, match="iteratetask"):
        list(t)


def test_run_substitutes_dependencies_everywhere():
    inner = Task(add, 1)
    outer = Task(add, {"a": [inner, (inner,)]}, b={"x": inner})
    values = {inner.hash: 10}
    seen = {}

    def fake_f(a, b):
        seen["a"], seen["b"] = a, b
        return 0

    outer.f = fake_f
    outer.run(lambda task: values[task.hash])
    assert seen == {"a": {"a": [10, (10,)]}, "b": {"x": 10}}


def test_run_substitutes_dependencies_used_as_dict_keys_and_in_sets():
    key = Task(add, 2)
    outer = Task(add, {key: "v"}, b={key})
    assert outer.deps == (key,)
    seen = {}

    def fake_f(a, b):
        seen["a"], seen["b"] = a, b

    outer.f = fake_f
    outer.run(lambda task: {key.hash: 7}[task.hash])
    assert seen == {"a": {7: "v"}, "b": {7}}


def test_value_without_a_store_is_a_clear_error():
    t = Task(add, 1)
    with pytest.raises(taskflow.TaskflowError, match="taskflow.init"):
        taskflow.value(t)


def test_value_passes_plain_values_through():
    assert taskflow.value({"a": [1, (2, None)]}) == {"a": [1, (2, None)]}


def test_non_callable_is_refused():
    with pytest.raises(taskflow.TaskDeclarationError, match="function"):
        Task(42)


def test_index_tasks_are_dependencies_and_are_substituted():
    base = gen(1)
    i = Task(add, 1)
    pair = gen(0)
    element = base[i]
    assert set(element.deps) == {i}
    sliced = base[i:pair[1]]
    assert {d.hash for d in sliced.deps} == {i.hash, pair.hash}
    user = Task(add, element, sliced)
    assert {d.hash for d in user.deps} == {base.hash, i.hash, pair.hash}
    results = {base.hash: ["a", "b", "c"], i.hash: 1, pair.hash: [0, 3]}
    seen = {}

    def fake_f(a, b):
        seen["a"], seen["b"] = a, b

    user.f = fake_f
    user.run(lambda task: results[task.hash])
    assert seen == {"a": "b", "b": ["b", "c"]}
    assert "test_task.add" in element.name


def test_index_tasks_enter_the_hash():
    base = gen(1)
    one, two = Task(add, 1), Task(add, 2)
    assert base[one].hash != base[two].hash
    assert base[one].hash == gen(1)[Task(add, 1)].hash
    assert base[one].hash != base[1].hash
    assert base[one:two].hash != base[two:one].hash
    assert base[gen(0)[0]].hash != base[gen(0)[1]].hash
    # A slice argument holding tasks is substituted too, not only an index.
    user = Task(add, slice(one, two))
    assert set(user.deps) == {one, two}
    seen = {}
    user.f = lambda a: seen.setdefault("a", a)
    user.run(lambda task: {one.hash: 1, two.hash: 2}[task.hash])
    assert seen["a"] == slice(1, 2)
