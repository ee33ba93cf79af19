"""Tasks: deferred calls whose arguments may be other tasks.

Declaring a task only names and hashes it; nothing runs. Every task declared
while a taskfile loads is recorded, in declaration order, in the active
`Declarations`, which is how `execute` and `status` learn the graph.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import CorruptResultError, ResultMissingError, TaskDeclarationError, TaskFailedError, TaskflowError
from .hashing import ElementArgument, GeneratorArgument, TaskArgument, function_name, task_hash, value_hash
from .resources import NONE, Resources, parse
from .retry import Retry
from .retry import parse as parse_retry


class Declarations:
    """The tasks declared by one load of a taskfile, in declaration order."""

    def __init__(self, store: Any = None):
        self.store = store
        self.tasks: dict[str, Task] = {}
        self.known_finished: set[str] = set()  # memo for barrier() checks
        self.barriers_passed = 0
        # Limits the taskfile set for the worker (max_tasks, max_time, stop_files), from jug's exit hooks.
        self.limits: dict = {}
        # taskflow.defaults(resources=...): what later tasks of this taskfile get for what they leave out.
        self.resource_defaults: Resources = NONE

    def add(self, task: Task) -> None:
        # The same call declared twice is the same task: keep the first.
        self.tasks.setdefault(task.hash, task)


_active = Declarations()


def activate(declarations: Declarations) -> Declarations:
    """Make `declarations` receive new tasks; returns the previously active one."""
    global _active
    previous, _active = _active, declarations
    return previous


def active() -> Declarations:
    return _active


class Task(TaskArgument):
    """A deferred call `f(*args, **kwargs)`; arguments may contain other tasks."""

    __slots__ = ("f", "args", "kwargs", "name", "hash", "deps", "store", "version", "resources", "retry",
                 "__weakref__")

    def __init__(self, f: Callable, *args: Any, **kwargs: Any):
        if isinstance(f, TaskGenerator):
            name, version, resources, retry, f = f.name, f.version, f.resources, f.retry, f.f
        elif not callable(f):
            raise TaskDeclarationError(f"Task needs a function as its first argument, got {f!r}")
        else:
            # `version`, `resources`, `retries` and `retry_on` are taskflow's here; a function with
            # its own keyword of that name is declared through TaskGenerator instead.
            name, version = function_name(f), kwargs.pop("version", None)
            resources = parse(kwargs.pop("resources", None), f"task {name}")
            retry = parse_retry(kwargs.pop("retries", None), kwargs.pop("retry_on", None), f"task {name}")
        self.retry: Retry | None = retry  # not part of the hash either
        # Not part of the hash: asking for more memory must not make a finished task run again.
        defaults = _active.resource_defaults
        self.resources: Resources = resources if defaults is NONE else resources.over(defaults)
        self.f = f
        self.version = None if version is None else str(version)
        self.args = args
        self.kwargs = kwargs
        self.name = name
        self.hash, deps = task_hash(name, args, kwargs)
        self.deps: tuple[Task, ...] = tuple(deps.values())
        self.store = _active.store
        _active.add(self)

    def __getitem__(self, key: Any) -> TaskElement:
        return TaskElement(self, (key,))

    def __iter__(self):
        raise TypeError(f"cannot iterate over task {self.name}: use iteratetask(task, n)")

    def __repr__(self) -> str:
        return f"Task({self.name}, {self.hash[:12]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other.hash == self.hash

    def __hash__(self) -> int:
        return hash(self.hash)

    def value(self, mmap: bool = False) -> Any:
        """The stored result of this task (see `taskflow.value`)."""
        return load_task(self, mmap)

    def run(self, lookup: Callable[[Task], Any]) -> Any:
        """Call the function, with every task in the arguments replaced by `lookup(task)`."""
        if not self.deps:
            return self.f(*self.args, **self.kwargs)
        args = substitute(self.args, lookup)
        kwargs = substitute(self.kwargs, lookup)
        return self.f(*args, **kwargs)


class TaskElement(ElementArgument):
    """A lazy `task[key]` (possibly nested) usable as an argument of another task.

    A key may itself be a task or a task element (`r[z]`), or a slice whose
    bounds are (`r[a:b]`): those are dependencies of whatever uses the element
    (`deps`), and are replaced by their results when the element is picked.
    """

    __slots__ = ("task", "path", "hash", "deps")
    task: Task

    def __init__(self, task: Task, path: tuple):
        self.task = task
        self.path = path
        found: dict = {}
        try:
            # An index task enters the hash as its own hash, like any task argument.
            self.hash = value_hash((task.hash, path), found)
        except TaskDeclarationError as e:
            raise TaskDeclarationError(f"task {task.name}: index {path[-1]!r}: {e}", task=task.name) from None
        self.deps: tuple[Task, ...] = tuple(found.values())

    @property
    def name(self) -> str:
        return self.task.name + "".join(f"[{_key_text(key)}]" for key in self.path)

    def __getitem__(self, key: Any) -> TaskElement:
        return TaskElement(self.task, self.path + (key,))

    def __repr__(self) -> str:
        return f"TaskElement({self.name}, {self.task.hash[:12]})"

    def pick(self, base_value: Any, lookup: Callable[[Task], Any]) -> Any:
        """This element of `base_value` (the task's result); `lookup` gives the results of index tasks."""
        if not self.deps:
            for key in self.path:
                base_value = base_value[key]
            return base_value
        for key in self.path:
            base_value = base_value[substitute(key, lookup)]
        return base_value

    def value(self, mmap: bool = False) -> Any:
        return self.pick(load_task(self.task, mmap), lambda task: load_task(task, mmap))


def _key_text(key: Any) -> str:
    if isinstance(key, (Task, TaskElement)):
        return key.name
    if isinstance(key, slice) and any(isinstance(p, (Task, TaskElement)) for p in (key.start, key.stop, key.step)):
        parts = ["" if p is None else _key_text(p) for p in (key.start, key.stop, key.step)]
        return ":".join(parts[:2] if key.step is None else parts)
    return repr(key)


class TaskGenerator(GeneratorArgument):
    """Decorator: calling the decorated function declares a Task instead of running it.

    `@TaskGenerator(version="2")` records a version with every result; bump it
    to mark results of earlier versions as changed (see `taskflow status`).
    Results stay keyed by name and arguments, not by version.
    `@TaskGenerator(resources={"cpus": 4, "mem": "16G", "gpus": 1, "time": "2h"})`
    declares what each of its tasks needs (see taskflow.resources); it is not
    part of the hash either. `@TaskGenerator(retries=2, retry_on=(OSError,))`
    runs a task that raised one of those again, up to twice (see taskflow.retry).
    """

    f: Callable
    name: str
    version: str | None
    resources: Resources
    retry: Retry | None

    def __new__(cls, f: Callable | None = None, *, version: Any = None, resources: Any = None,
                retries: int | None = None, retry_on: Any = None):
        if f is None:
            return functools.partial(cls, version=version, resources=resources, retries=retries, retry_on=retry_on)
        return super().__new__(cls)

    def __init__(self, f: Callable, *, version: Any = None, resources: Any = None,
                 retries: int | None = None, retry_on: Any = None):
        retry = None
        if isinstance(f, TaskGenerator):
            version = f.version if version is None else version
            resources = f.resources if resources is None else resources
            retry = f.retry
            f = f.f
        self.f = f
        self.name = function_name(f)
        self.version = None if version is None else str(version)
        self.resources = parse(resources, f"task {self.name}")
        if retries is not None or retry_on is not None:
            retry = parse_retry(retries, retry_on, f"task {self.name}")
        self.retry = retry
        functools.update_wrapper(self, f)

    def __call__(self, *args: Any, **kwargs: Any) -> Task:
        return Task(self, *args, **kwargs)

    def __repr__(self) -> str:
        return f"TaskGenerator({self.name})"


def defaults(*, resources: Any = None) -> None:
    """Defaults for the tasks the taskfile declares after this call: `resources=` fills in what
    a task's own leave out (`taskflow.defaults(resources={"mem": "4G"})`)."""
    _active.resource_defaults = parse(resources, "taskflow.defaults()")


def load_task(task: Task, mmap: bool = False) -> Any:
    """The stored result of one task; ResultMissingError, TaskFailedError or CorruptResultError if none."""
    store = task.store or active().store
    if store is None:
        raise TaskflowError(f"task {task.name} belongs to no store: load the taskfile with "
                            "taskflow.init('taskfile.py') first")
    store.check_format()  # tasks declared without init() reach the store only here
    try:
        result = store.load_value(task.hash, mmap=mmap)
    except FileNotFoundError:
        failure = store.load_failure(task.hash)
        if failure is not None:
            raise TaskFailedError(task.name, task.hash,
                                  f"{failure.get('type')}: {failure.get('message')}") from None
        raise ResultMissingError(task.name, task.hash) from None
    except CorruptResultError as e:
        from . import damage

        try:
            # This client's cache may hold pages of a file another client replaced.
            return store.load_value(task.hash, mmap=mmap, fresh=True)
        except FileNotFoundError:
            raise ResultMissingError(task.name, task.hash) from None
        except CorruptResultError:
            raise damage.found(store, task.hash, task.name, e) from None
    return result


def iteratetask(task: Task | TaskElement, n: int) -> Iterator[TaskElement]:
    """Yield `task[0] .. task[n-1]`, so a task returning a tuple can be unpacked."""
    for i in range(n):
        yield task[i]


def substitute(obj: Any, lookup: Callable[[Task], Any], other: Callable[[Any], Any] | None = None) -> Any:
    """`obj` with each Task or TaskElement inside lists, tuples, dicts and sets replaced.

    `other`, where given, replaces each object that is none of these (jug's Tasklets).
    """
    kind = type(obj)
    if kind is Task:
        return lookup(obj)
    if kind is TaskElement:
        return obj.pick(lookup(obj.task), lookup)
    if kind is list:
        return [substitute(item, lookup, other) for item in obj]
    if kind is tuple:
        return tuple(substitute(item, lookup, other) for item in obj)
    if kind is dict:
        return {substitute(key, lookup, other): substitute(val, lookup, other) for key, val in obj.items()}
    if kind is set or kind is frozenset:
        return kind(substitute(item, lookup, other) for item in obj)
    if kind is slice:
        return slice(substitute(obj.start, lookup, other), substitute(obj.stop, lookup, other),
                     substitute(obj.step, lookup, other))
    if isinstance(obj, tuple) and hasattr(obj, "_make"):  # namedtuple
        return kind._make(substitute(item, lookup, other) for item in obj)
    if isinstance(obj, Task):  # a subclass: jug's Task (taskflow.jug)
        return lookup(obj)
    return obj if other is None else other(obj)


def tasks_in(obj: Any, found: dict | None = None) -> dict[str, Task]:
    """The tasks `substitute` would replace in `obj` (those of task elements and their indexes too), by hash."""
    found = {} if found is None else found
    kind = type(obj)
    if isinstance(obj, Task):  # subclasses too: jug's Task (taskflow.jug)
        found[obj.hash] = obj
    elif kind is TaskElement:
        found[obj.task.hash] = obj.task
        for d in obj.deps:
            found[d.hash] = d
    elif kind is dict:
        for key, val in obj.items():
            tasks_in(key, found)
            tasks_in(val, found)
    elif kind is slice:
        for part in (obj.start, obj.stop, obj.step):
            tasks_in(part, found)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for item in obj:
            tasks_in(item, found)
    return found


def closure(roots: Iterable[Task]) -> list[Task]:
    """`roots` and everything they depend on, directly or not; dependencies come first."""
    order: list[Task] = []
    seen: set[str] = set()
    for root in roots:
        if root.hash in seen:
            continue
        seen.add(root.hash)
        stack = [(root, iter(root.deps))]
        while stack:
            task, deps = stack[-1]
            for d in deps:
                if d.hash not in seen:
                    seen.add(d.hash)
                    stack.append((d, iter(d.deps)))
                    break
            else:
                stack.pop()
                order.append(task)
    return order
