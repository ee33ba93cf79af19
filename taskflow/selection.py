"""Selecting tasks by name: the one syntax of every command that takes task names.

`execute --target`, `invalidate --target`, `show` and the `show`/`invalidate`
of `taskflow shell` all read a PATTERN the same way, trying in this order:

- `/REGEX/`: tasks whose full name the regular expression matches anywhere
  (`re.search`): `/count/` matches `taskfile.count_words`.
- a shell glob, a pattern holding `*`, `?` or `[`: tasks whose full name or
  whose part after the last dot matches it (`fnmatch`, case-sensitive):
  `count_*` and `taskfile.count_*` both match `taskfile.count_words`.
- otherwise a name: tasks whose full name is PATTERN (`taskfile.count_words`)
  or whose part after the last dot is (`count_words`).

A pattern that matches no task is an error naming it (exit 2). `show` also
takes `NAME[i]` (the i-th task matched by NAME, in declaration order) and a
hash prefix; see `taskflow.report.find`.
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence

from .errors import NoTaskMatchesError, UsageError
from .task import Task

GLOB_CHARS = frozenset("*?[")


def matcher(pattern: str, label: str = "--target") -> Callable[[str], bool]:
    """A test of full task names for `pattern`; a bad regular expression is a UsageError."""
    if len(pattern) > 1 and pattern.startswith("/") and pattern.endswith("/"):
        try:
            rx = re.compile(pattern[1:-1])
        except re.error as e:
            raise UsageError(f"{_named(label, pattern)}: bad regular expression: {e}") from None
        return lambda name: rx.search(name) is not None
    if GLOB_CHARS.intersection(pattern):
        rx = re.compile(fnmatch.translate(pattern))
        return lambda name: rx.match(name) is not None or rx.match(_short(name)) is not None
    return lambda name: name == pattern or _short(name) == pattern


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _named(label: str, pattern: str) -> str:
    return f"{label} {pattern}" if label else pattern


def matching(tasks: Sequence[Task], pattern: str, label: str = "--target") -> list[Task]:
    """Tasks matched by `pattern`, in declaration order (possibly none)."""
    test = matcher(pattern, label)
    # Thousands of tasks share a handful of names: test each name once.
    verdicts: dict[str, bool] = {}
    out = []
    for t in tasks:
        hit = verdicts.get(t.name)
        if hit is None:
            hit = verdicts[t.name] = test(t.name)
        if hit:
            out.append(t)
    return out


def select(tasks: Sequence[Task], patterns: Iterable[str], label: str = "--target") -> list[Task]:
    """Tasks matched by any of `patterns`, in declaration order.

    Raises NoTaskMatchesError naming the first pattern that matches no task
    (after checking every pattern's syntax, so a bad regular expression is
    reported as such).
    """
    patterns = list(patterns)
    tests = [(p, matcher(p, label)) for p in patterns]
    names = list(dict.fromkeys(t.name for t in tasks))
    chosen: set[str] = set()
    for pattern, test in tests:
        hits = {name for name in names if test(name)}
        if not hits:
            shown = sorted(names)
            raise NoTaskMatchesError(
                f"{_named(label, pattern)} matches no task; task names are: "
                + (", ".join(shown[:20]) + (" ..." if len(shown) > 20 else "") if shown else "(none)"),
                pattern=pattern)
        chosen |= hits
    return [t for t in tasks if t.name in chosen]


def with_dependencies(tasks: Sequence[Task], roots: Iterable[Task]) -> list[Task]:
    """`roots` and everything they depend on, directly or not, in the order of `tasks`."""
    keep: set[str] = set()
    stack = list(roots)
    while stack:
        t = stack.pop()
        if t.hash not in keep:
            keep.add(t.hash)
            stack.extend(t.deps)
    return [t for t in tasks if t.hash in keep]


def select_targets(tasks: list[Task], patterns: Sequence[str]) -> list[Task]:
    """What `execute --target` runs: the tasks `patterns` select and their dependencies (all without patterns)."""
    if not patterns:
        return tasks
    return with_dependencies(tasks, select(tasks, patterns))
