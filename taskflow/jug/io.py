"""jug.io: NoLoad and write_task_out."""
from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

from .task import TaskGenerator, Tasklet, describe

__all__ = ["NoLoad", "write_task_out", "write_metadata"]


class NoLoad(Tasklet):
    """`NoLoad(t)` as an argument: the function receives this wrapper, not the result (`.base` is `t`).

    `t` still runs first. The function reads its result with `jug.value(x.base)` when it wants it.
    """

    __slots__ = ()

    def __init__(self, base: Any):
        super().__init__(base, "NoLoad")

    @property
    def t(self) -> Any:
        return self.base

    def __getitem__(self, key: Any):
        raise TypeError("a NoLoad cannot be indexed")

    def value(self) -> NoLoad:
        return self

    def __jug_value__(self) -> NoLoad:
        return self

    def _resolve(self, lookup: Callable) -> NoLoad:
        return self

    def _key_view(self) -> Any:
        from .keyview import TASKLET, key_view
        return (TASKLET, key_view(self.base), "NoLoad")


@TaskGenerator
def _do_write_task_out(result_value: Any, result: NoLoad, oname: str | None, metadata_fname: str | None = None,
                       metadata_format: str = "yaml") -> None:
    if metadata_fname is not None:
        description = describe(result.base)
        fmt = metadata_format.lower()
        if fmt not in ("yaml", "json"):
            raise ValueError(f"write_task_out: unknown metadata format {metadata_format!r} (yaml or json)")
        with open(metadata_fname, "w") as out:
            if fmt == "yaml":
                import yaml  # PyYAML, as jug needs for this format
                yaml.dump(description, out)
            else:
                json.dump(description, out)
    if oname is None:
        return
    import sys
    np = sys.modules.get("numpy")
    with open(oname, "wb") as out:
        if np is not None and isinstance(result_value, np.ndarray):
            np.save(out, result_value)
        else:
            pickle.dump(result_value, out)


def write_task_out(result: Any, oname: str, metadata_fname: str | None = None,
                   metadata_format: str = "yaml") -> Any:
    """A task that writes `result` to `oname` (.npy for an array, a pickle otherwise), and metadata if asked."""
    return _do_write_task_out(result, NoLoad(result), oname, metadata_fname, metadata_format)


def write_metadata(result: Any, metadata_fname: str, metadata_format: str = "yaml") -> Any:
    """A task that writes what is known of how `result` was computed to `metadata_fname`."""
    return _do_write_task_out(result, NoLoad(result), None, metadata_fname, metadata_format)
