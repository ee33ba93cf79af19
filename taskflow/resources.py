"""What a task needs to run: cpus, memory, GPUs and time, as declared with `resources=`.

A task declares them on its TaskGenerator (`@TaskGenerator(resources={"cpus": 4, "mem": "16G"})`)
or on `Task(f, ..., resources=...)`; what it leaves out comes from `taskflow.defaults(resources=...)`
in its taskfile (for the tasks declared after that call), then from `[tool.taskflow.resources]` of the
pyproject.toml beside the taskfile. Resources never enter a task's hash: asking for more memory
does not make a finished task run again.

Memory is read by `units.parse_memory` (megabytes) and time by `units.parse_duration`
(seconds), the same readers as `taskflow submit --mem/--time`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import UsageError
from .units import format_duration, parse_duration, parse_memory

KEYS = ("cpus", "mem", "gpus", "time")


class ResourceError(UsageError):
    """A `resources=` value taskflow cannot read: an unknown key or a bad amount."""

    def __init__(self, message: str, where: str | None = None, key: str | None = None):
        self.where = where
        self.key = key
        super().__init__(message)


@dataclass(frozen=True)
class Resources:
    """Declared needs; None in a field nobody declared."""

    cpus: int | None = None
    memory: int | None = None   # megabytes
    gpus: int | None = None
    time: float | None = None   # seconds

    def __bool__(self) -> bool:
        # Spelled out, not a loop over fields(): every declared task asks this once.
        return not (self.cpus is None and self.memory is None and self.gpus is None and self.time is None)

    def over(self, defaults: Resources) -> Resources:
        """These resources, with what they leave out taken from `defaults`."""
        if not defaults:
            return self  # most workers have no defaults: asked once per task, so no copy
        if not self:
            return defaults
        return Resources(**{f.name: getattr(defaults, f.name) if getattr(self, f.name) is None
                            else getattr(self, f.name) for f in fields(self)})

    def key(self) -> tuple:
        """What makes two tasks belong to one resource class."""
        return (self.cpus, self.memory, self.gpus, self.time)

    def as_dict(self) -> dict[str, Any]:
        """The declared fields, in the form `resources=` takes (mem like "16G", time like "2h")."""
        out: dict[str, Any] = {}
        if self.cpus is not None:
            out["cpus"] = self.cpus
        if self.memory is not None:
            out["mem"] = format_memory(self.memory)
        if self.gpus is not None:
            out["gpus"] = self.gpus
        if self.time is not None:
            out["time"] = format_duration(self.time)
        return out

    def describe(self) -> str:
        """`cpus=4 mem=16G gpus=1 time=2h00m`, or `no declared resources`."""
        shown = self.as_dict()
        return " ".join(f"{k}={v}" for k, v in shown.items()) if shown else "no declared resources"

    def worker_args(self) -> list[str]:
        """The `execute` options that tell a worker which class it serves (time is its walltime)."""
        args: list[str] = []
        if self.cpus is not None:
            args += ["--cpus", str(self.cpus)]
        if self.memory is not None:
            args += ["--mem", format_memory(self.memory)]
        if self.gpus is not None:
            args += ["--gpus", str(self.gpus)]
        return args


NONE = Resources()


def format_memory(megabytes: int) -> str:
    """`16G` for whole gigabytes, else `1536M`: what parse_memory reads back."""
    return f"{megabytes // 1024}G" if megabytes % 1024 == 0 else f"{megabytes}M"


def _count(value: Any, key: str, where: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        else:
            raise ResourceError(f"{where}: resources {key}={value!r} is not a whole number", where, key)
    if value < least:
        raise ResourceError(f"{where}: resources {key}={value!r}: give at least {least}", where, key)
    return value


def parse(spec: Mapping[str, Any] | Resources | None, where: str) -> Resources:
    """Resources from a `resources=` mapping; `where` (the task, or the file) names it in errors."""
    if spec is None:
        return NONE
    if isinstance(spec, Resources):
        return spec
    if not isinstance(spec, Mapping):
        raise ResourceError(f"{where}: resources must be a dict such as {{'cpus': 4, 'mem': '16G'}}, "
                            f"not {type(spec).__name__}", where)
    unknown = [k for k in spec if k not in KEYS]
    if unknown:
        raise ResourceError(f"{where}: unknown resource {unknown[0]!r}; known: {', '.join(KEYS)}", where,
                            str(unknown[0]))
    values: dict[str, Any] = {}
    if spec.get("cpus") is not None:
        values["cpus"] = _count(spec["cpus"], "cpus", where, 1)
    if spec.get("gpus") is not None:
        values["gpus"] = _count(spec["gpus"], "gpus", where, 0)
    if spec.get("mem") is not None:
        mem = spec["mem"]
        if isinstance(mem, bool) or not isinstance(mem, (int, str)):
            raise ResourceError(f"{where}: resources mem={mem!r} is not a memory size (examples: 512M, 16G)",
                                where, "mem")
        if isinstance(mem, int) and mem <= 0:
            raise ResourceError(f"{where}: resources mem={mem!r}: give more than 0", where, "mem")
        try:
            values["memory"] = parse_memory(mem, f"resources mem={mem!r}")
        except UsageError as e:
            raise ResourceError(f"{where}: {e}", where, "mem") from None
    if spec.get("time") is not None:
        duration = spec["time"]
        if isinstance(duration, bool) or not isinstance(duration, (int, float, str)):
            raise ResourceError(f"{where}: resources time={duration!r} is not a duration (examples: 90s, 2h)",
                                where, "time")
        try:
            seconds = parse_duration(duration, f"resources time={duration!r}")
        except UsageError as e:
            raise ResourceError(f"{where}: {e}", where, "time") from None
        if not seconds > 0 or math.isinf(seconds):
            raise ResourceError(f"{where}: resources time={duration!r}: give more than 0", where, "time")
        values["time"] = seconds
    return Resources(**values)


def project_defaults(taskfile: str) -> Resources:
    """`[tool.taskflow.resources]` of the pyproject.toml beside `taskfile`; none when there is none."""
    from .config import read_section  # only here: declaring a task must not pay for config parsing
    section, path = read_section(taskfile, "resources")
    if not section:
        return NONE
    return parse(section, f"{path} [tool.taskflow.resources]")


def effective(task: Any, defaults: Resources = NONE) -> Resources:
    """What `task` needs: its own (with its taskfile's defaults), then `defaults`."""
    own: Resources = getattr(task, "resources", None) or NONE
    return own.over(defaults)
