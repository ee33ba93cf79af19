"""Provenance: what ran where, for how long, with how much memory; and one task in full."""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import CorruptResultError, NoTaskMatchesError, UsageError
from .selection import matching
from .stores.base import Store
from .task import Task, TaskElement
from .units import format_duration

log = logging.getLogger(__name__)


@dataclass
class NameReport:
    finished: int = 0
    total_seconds: float = 0.0
    max_seconds: float = 0.0
    max_rss_bytes: int | None = None
    hosts: dict[str, int] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list, repr=False)  # for histograms
    rss: list[int] = field(default_factory=list, repr=False)

    def histogram(self, which: str, bins: int = 20) -> dict:
        """Counts of `durations` or `rss` in `bins` equal bins from the least to the most."""
        values = getattr(self, which)
        if not values:
            return {"low": None, "high": None, "counts": []}
        low, high = min(values), max(values)
        if high == low:
            return {"low": low, "high": high, "counts": [len(values)]}
        counts = [0] * bins
        width = (high - low) / bins
        for v in values:
            counts[min(int((v - low) / width), bins - 1)] += 1
        return {"low": low, "high": high, "counts": counts}

    @property
    def mean_seconds(self) -> float:
        return self.total_seconds / self.finished if self.finished else 0.0


@dataclass
class Report:
    names: dict[str, NameReport]
    slowest: list[dict]  # metadata of the slowest tasks, slowest first
    metas: list[dict] = field(default_factory=list, repr=False)  # of every finished task, slowest first

    def to_json(self) -> dict:
        return {
            "tasks": {name: {"finished": r.finished, "total_seconds": r.total_seconds,
                             "mean_seconds": r.mean_seconds, "max_seconds": r.max_seconds,
                             "max_rss_bytes": r.max_rss_bytes, "hosts": r.hosts}
                      for name, r in self.names.items()},
            "slowest": [{k: m.get(k) for k in ("name", "hash", "duration", "host", "worker", "max_rss_bytes")}
                        for m in self.slowest],
        }

    def table(self) -> str:
        width = max([len(n) for n in self.names] + [4])
        head = (f"{'Task':<{width}} {'Finished':>9} {'Total':>9} {'Mean':>9} {'Max':>9} {'Peak mem':>9}  Hosts")
        rows = [head, "-" * len(head)]
        for name, r in self.names.items():
            mem = _mib(r.max_rss_bytes)
            hosts = ", ".join(f"{h} ({n})" for h, n in sorted(r.hosts.items(), key=lambda kv: -kv[1])[:3])
            if len(r.hosts) > 3:
                hosts += f", +{len(r.hosts) - 3} more"
            rows.append(f"{name:<{width}} {r.finished:>9} {format_duration(r.total_seconds):>9} "
                        f"{_secs(r.mean_seconds):>9} {_secs(r.max_seconds):>9} {mem:>9}  {hosts}")
        if self.slowest:
            rows.append("")
            rows.append("Slowest tasks:")
            for m in self.slowest:
                rows.append(f"  {_secs(m.get('duration', 0)):>9}  {m.get('name')} {str(m.get('hash'))[:12]} "
                            f"on {m.get('host')} ({_mib(m.get('max_rss_bytes'))})")
        return "\n".join(rows)


def _secs(s: float) -> str:
    return f"{s:.3f}s" if s < 60 else format_duration(s)


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.0f} MiB"


def report(tasks: Sequence[Task], store: Store, slowest: int = 10) -> Report:
    """Read the metadata of every finished task (headers only) and summarise it per name."""
    names = {t.name: NameReport() for t in tasks}
    metas: list[dict] = []
    from . import damage

    def damaged(task: Task, error: CorruptResultError) -> None:
        log.warning("%s", damage.found(store, task.hash, task.name, error))

    for t, meta in store.metas(tasks, on_damaged=damaged):
        r = names[t.name]
        duration = float(meta.get("duration") or 0.0)
        r.finished += 1
        r.total_seconds += duration
        r.max_seconds = max(r.max_seconds, duration)
        r.durations.append(duration)
        rss = meta.get("max_rss_bytes")
        if isinstance(rss, int):
            r.rss.append(rss)
            r.max_rss_bytes = rss if r.max_rss_bytes is None else max(r.max_rss_bytes, rss)
        host = str(meta.get("host", "?"))
        r.hosts[host] = r.hosts.get(host, 0) + 1
        metas.append(meta)
    metas.sort(key=lambda m: -float(m.get("duration") or 0.0))
    return Report(names, metas[:slowest], metas)


_INDEXED = re.compile(r"^(?P<name>.+)\[(?P<i>\d+)\]$")


def find(tasks: Sequence[Task], target: str) -> list[Task]:
    """Tasks meant by TARGET: a pattern (see taskflow.selection), `PATTERN[i]` (the i-th task it
    matches, in declaration order), or a hash prefix."""
    m = _INDEXED.match(target)
    if m:
        same = matching(tasks, m["name"], label="")
        i = int(m["i"])
        if i >= len(same):
            raise UsageError(f"{target}: there are {len(same)} tasks named {m['name']}")
        return [same[i]]
    named = matching(tasks, target, label="")
    if named:
        return named
    if re.fullmatch(r"[0-9a-f]{4,32}", target):
        by_hash = [t for t in tasks if t.hash.startswith(target)]
        if by_hash:
            return by_hash
    raise NoTaskMatchesError(f"{target} matches no task by name, pattern, NAME[i] or hash prefix "
                             "(at least 4 hex digits)", pattern=target)


def _summary(x: Any, limit: int = 60) -> str:
    if isinstance(x, Task):
        return f"<{x.name} {x.hash[:12]}>"
    if isinstance(x, TaskElement):
        return f"<{x.name} {x.task.hash[:12]}>"
    if isinstance(x, (list, tuple)) and len(x) > 4:
        kind = type(x).__name__
        return f"{kind} of {len(x)}: [{', '.join(_summary(v, 20) for v in x[:3])}, ...]"
    if isinstance(x, (list, tuple)):
        inner = ", ".join(_summary(v, 20) for v in x)
        return f"[{inner}]" if isinstance(x, list) else f"({inner}{',' if len(x) == 1 else ''})"
    if isinstance(x, dict):
        items = list(x.items())
        inner = ", ".join(f"{k!r}: {_summary(v, 20)}" for k, v in items[:4])
        return "{" + inner + (", ..." if len(items) > 4 else "") + "}"
    shape = getattr(x, "shape", None)
    if shape is not None and hasattr(x, "dtype"):
        return f"array{tuple(shape)} {x.dtype}"
    text = repr(x)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def describe(task: Task, tasks: Sequence[Task], store: Store) -> str:
    """Everything known about one task, as `taskflow show` prints it."""
    lines = [f"task       {task.name}", f"hash       {task.hash}"]
    if task.version is not None:
        lines.append(f"version    {task.version}")
    for i, arg in enumerate(task.args):
        lines.append(f"argument {i + 1} {_summary(arg)}")
    for key, arg in task.kwargs.items():
        lines.append(f"keyword    {key}={_summary(arg)}")
    if task.deps:
        lines.append("depends on")
        for d in task.deps:
            lines.append(f"           {d.name} {d.hash[:12]} ({_state(d, store)})")
    users = [t for t in tasks if any(d.hash == task.hash for d in t.deps)]
    if users:
        lines.append(f"used by    {len(users)} task(s): "
                     + ", ".join(f"{t.name} {t.hash[:12]}" for t in users[:5]) + (" ..." if len(users) > 5 else ""))
    lines.append(f"state      {_state(task, store)}")
    if store.has_result(task.hash):
        try:
            meta = store.result_meta(task.hash)
            shown = {"duration": lambda v: _secs(float(v)), "max_rss_bytes": _mib}
            for key in ("host", "pid", "worker", "duration", "max_rss_bytes", "code", "version", "taskflow"):
                if meta.get(key) is not None:
                    lines.append(f"{_LABELS.get(key, key):<10} {shown.get(key, str)(meta[key])}")
            lines.extend(_attempt_lines(meta))
            lines.append(f"result     {store.location('result', task.hash)}")
        except CorruptResultError as e:
            from . import damage

            lines.append(f"result     {damage.found(store, task.hash, task.name, e)}")
    failure = store.load_failure(task.hash)
    if failure is not None:
        lines.append(f"failed     {failure.get('type')}: {failure.get('message')} "
                     f"on {failure.get('host')} (worker {failure.get('worker')})")
        lines.extend(_attempt_lines(failure))
        lines.append(f"record     {store.location('failure', task.hash)}")
        lines.append(str(failure.get("traceback", "")).rstrip())
    else:
        deaths = store.deaths(task.hash)
        if deaths:
            lines.append(f"died       its worker died {len(deaths)} time(s) while running it: "
                         + ", ".join(str((d.get("owner") or {}).get("worker", "?")) for d in deaths))
    return "\n".join(lines)


def _attempt_lines(record: dict) -> list[str]:
    """What a result's metadata or a failure record says of the attempts `retries=` made."""
    earlier = record.get("earlier")
    if not isinstance(earlier, list) or not earlier:
        return []
    lines = [f"attempts   {record.get('attempts', len(earlier) + 1)}"]
    for i, e in enumerate(earlier, 1):
        lines.append(f"  attempt {i} raised {e.get('type', '?')}: {e.get('message', '')}")
    return lines


_LABELS = {"max_rss_bytes": "peak mem"}


def _state(task: Task, store: Store) -> str:
    if store.has_result(task.hash):
        if store.is_suspect(task.hash):
            return f"found damaged, to be computed again (run `taskflow execute {store.taskfile or 'FILE'}`)"
        return "finished"
    if store.load_failure(task.hash) is not None:
        return "failed"
    claims = store.claims(reader=True)
    try:
        info = claims.inspect(task.hash)
    finally:
        claims.close()
    if info is not None:
        owner = info.owner
        return ("running" if not info.stale else "stale claim") + \
            f" by {owner.get('worker', '?')} on {owner.get('host', '?')} pid {owner.get('pid', '?')}"
    if all(store.has_result(d.hash) for d in task.deps):
        return "ready"
    return "waiting"
