"""Loading results: `value()` replaces every task in a structure by its result (`task.load_task`)."""
from __future__ import annotations

from typing import Any

from .task import load_task, substitute


def value(x: Any, mmap: bool = False) -> Any:
    """`x` with every task replaced by its stored result, through lists, tuples, dicts and sets.

    Each result is checked against its checksum and a damaged one raises
    CorruptResultError naming the file, after marking it for recomputation
    by the next `taskflow execute` (see damage.py). With `mmap=True`, arrays come back
    memory-mapped and read-only; then only the header and length are checked,
    not the checksum, since checking would read every byte.
    """
    return substitute(x, lambda task: load_task(task, mmap))
