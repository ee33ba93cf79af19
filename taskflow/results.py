"""Loading results: `value()` replaces every task in a structure by its result."""
from __future__ import annotations

from typing import Any

from .errors import CorruptResultError, ResultMissingError, TaskFailedError, TaskflowError
from .task import Task, active, substitute


def load_task(task: Task, mmap: bool = False) -> Any:
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


def value(x: Any, mmap: bool = False) -> Any:
    """`x` with every task replaced by its stored result, through lists, tuples, dicts and sets.

    Each result is checked against its checksum and a damaged one raises
    CorruptResultError naming the file, after marking it for recomputation
    by the next `taskflow execute` (see damage.py). With `mmap=True`, arrays come back
    memory-mapped and read-only; then only the header and length are checked,
    not the checksum, since checking would read every byte.
    """
    return substitute(x, lambda task: load_task(task, mmap))
