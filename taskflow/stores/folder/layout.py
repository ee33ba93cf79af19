"""What the parts of the folder store see of it: its folders and a few of its methods.

The modules that do one thing in the folder (claims, clock, journals, damage,
leftovers) are given the store and use no more of it than this; `FolderStore`
is what they get.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..claims import Claims
from ..modes import Modes
from .packed import Packs

if TYPE_CHECKING:
    from ...signing import Key, Seal


class Folder(Protocol):
    path: str
    marker_file: str
    locks_dir: str
    tmp_dir: str
    clock_dir: str
    done_dir: str
    damaged_dir: str
    doctor_dir: str
    attempts_dir: str
    results_dir: str
    packs_dir: str
    fsync: bool

    @property
    def packs(self) -> Packs: ...

    @property
    def modes(self) -> Modes: ...

    def ensure(self) -> None: ...
    def write_atomic(self, final: str, data: bytes) -> None: ...
    def result_path(self, task_hash: str) -> str: ...
    def seal(self, task_hash: str) -> Seal | None: ...
    @property
    def key(self) -> Key | None: ...
    def lock_path(self, task_hash: str) -> str: ...
    def lock_names(self) -> list[str]: ...
    def has_result(self, task_hash: str) -> bool: ...
    def unmark_suspect(self, task_hash: str) -> bool: ...
    def claims(self, lease: float | None = None, worker: str | None = None, reader: bool = False,
               clock: Callable[[], float] = time.time) -> Claims: ...
