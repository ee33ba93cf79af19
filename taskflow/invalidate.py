"""Invalidate: remove results so that the next `execute` computes them again.

Removing a result also removes everything downstream of it, since those were
computed from it. A task whose claim is live is skipped and reported: its
worker is about to write a result, and removing things under it would leave
the store inconsistent.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .fingerprint import fingerprint
from .stores.base import Store
from .task import Task


def downstream(tasks: Sequence[Task], roots: Iterable[Task]) -> list[Task]:
    """`roots` and every task depending on them, directly or not, in declaration order."""
    marked = {t.hash for t in roots}
    for t in tasks:  # declaration order is a topological order
        if t.hash not in marked and any(d.hash in marked for d in t.deps):
            marked.add(t.hash)
    return [t for t in tasks if t.hash in marked]


def current_tag(task: Task) -> str:
    return Store.code_tag(fingerprint(task.f), task.version)


def changed(tasks: Sequence[Task], store: Store, finished: set[str] | None = None) -> dict[str, list[Task]]:
    """Finished tasks whose stored result came from other code or another version, by name.

    Reads result headers only for names whose markers show more than one code
    version, so an unchanged store costs one listing per task name.
    """
    finished = store.finished_hashes() if finished is None else finished
    if not finished:
        return {}  # nothing finished, nothing from other code
    first: dict[str, Task] = {}   # by name; the tasks of a name are gathered only if its tags differ
    for t in tasks:
        if t.name not in first:
            first[t.name] = t
    out: dict[str, list[Task]] = {}
    for name, task in first.items():
        tags = store.code_tags(name)
        current = current_tag(task)
        if not tags or tags == {current}:
            continue
        group = [t for t in tasks if t.name == name]
        stale = [t for t, meta in store.metas(group, finished)
                 if Store.code_tag(meta.get("code"), meta.get("version")) != current]
        if stale:
            out[name] = stale
        else:
            for tag in tags - {current}:  # nothing left from that code: stop looking
                store.forget_code(name, tag)
    return out


@dataclass
class Invalidated:
    results: Counter = field(default_factory=Counter)    # by task name
    failures: Counter = field(default_factory=Counter)
    skipped_live: list[Task] = field(default_factory=list)


def invalidate(store: Store, tasks: Sequence[Task], roots: Sequence[Task], dry_run: bool = False) -> Invalidated:
    """Remove results and failure records of `roots` and everything downstream."""
    done = Invalidated()
    doomed = downstream(tasks, roots)
    finished = store.finished_hashes()
    failed = store.failed_hashes()
    died = store.died_hashes()  # attempts whose worker died: counted again from nothing
    claims = store.claims(reader=dry_run)  # a dry run writes nothing, not even a clock file
    try:
        locked = claims.claimed()
        for t in doomed:
            if t.hash in locked:
                info = claims.inspect(t.hash)
                if info is not None and not info.stale:
                    done.skipped_live.append(t)
                    continue
            if t.hash in finished and (dry_run or store.remove_result(t.hash)):
                done.results[t.name] += 1
            if t.hash in failed and (dry_run or store.remove_failure(t.hash)):
                done.failures[t.name] += 1
            if t.hash in died and not dry_run:
                store.forget_deaths(t.hash)
    finally:
        claims.close()
    if done.results and not dry_run:
        # Records of finished runs would make check and wait look for what was just removed.
        from .confirm import forget_complete

        forget_complete(store)
    return done
