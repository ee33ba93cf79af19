"""What dead writers leave in a folder store, and when it may go.

- "claim": what a takeover or a release cut short left in locks/
  (`<hash>.released.*`, `<hash>.stale.*`, `<hash>.takeover.*`);
- "tmp": temp files in tmp/ (`<label>.<host>.<pid>.<random>`);
- "clock", "journal": clock files and journals of workers that died;
- "doctor": scratch folders of a `taskflow doctor` killed with kill -9.

Files of a process that ran on this host may go as soon as it is gone, never
while it runs; those of other hosts (or unreadable ones) only after
FOREIGN_AGE untouched on the filesystem's clock: a write in progress on a
slow filesystem must never lose its file.
"""
from __future__ import annotations

import os
import shutil

from ..base import Leftover
from ..identity import HOST, gone_from_here, on_this_host, writer_gone_from_here, writer_of_this_host
from .claimfiles import read_owner
from .files import remove_file
from .layout import Folder


FOREIGN_AGE = 24 * 3600.0


def find(store: Folder, kind: str) -> list[Leftover]:
    if kind == "claim":
        return _claim_leftovers(store)
    folder = {"tmp": store.tmp_dir, "clock": store.clock_dir, "journal": store.done_dir,
              "doctor": store.doctor_dir}[kind]
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    if not entries:
        return []
    fs_now = _fs_now(store)
    found = []
    for entry in entries:
        if kind == "doctor" and not entry.is_dir(follow_symlinks=False):
            continue
        if _writer_is_dead(entry, fs_now):
            found.append(Leftover(kind, entry.path, entry.path))
    return found


def remove(store: Folder, leftover: Leftover) -> bool:
    if leftover.kind != "doctor":
        return remove_file(leftover.key)
    shutil.rmtree(leftover.key, ignore_errors=True)
    try:
        os.rmdir(store.doctor_dir)
    except OSError:
        pass  # a running doctor's folder is in it
    return True


def _fs_now(store: Folder) -> float:
    claims = store.claims()
    try:
        return claims.now()
    finally:
        claims.close()


def _claim_leftovers(store: Folder) -> list[Leftover]:
    found = []
    fs_now: float | None = None
    for name in store.lock_names():
        if "." not in name:
            continue  # a claim, live or stale: judged by the claims
        path = os.path.join(store.locks_dir, name)
        owner = read_owner(path)
        if owner is None:
            continue
        why: str | None = None
        if gone_from_here(owner):
            why = f"process {owner['pid']} on {HOST} is gone"
        elif not on_this_host(owner):
            # It holds a claim's record: the moved claim itself (.released., .stale.) or the
            # taker's (.takeover.). From other hosts, or unreadable, only age tells.
            try:
                fs_now = _fs_now(store) if fs_now is None else fs_now
                age = fs_now - os.lstat(path).st_mtime  # a moved link to nothing: the link itself
            except FileNotFoundError:
                continue
            why = f"untouched for {age / 3600:.0f}h" if age > FOREIGN_AGE else None
        if why is not None:
            found.append(Leftover("claim", f"{name} ({why})", path))
    return found


def _writer_is_dead(entry: os.DirEntry, fs_now: float) -> bool:
    # Temp names are <label>.<host>.<pid>.<random>; host names may contain dots.
    parts = entry.name.rsplit(".", 2)
    if len(parts) == 3:
        head, pid, _ = parts
        host = HOST if head.endswith("." + HOST) else head  # the label before it may hold dots
        if writer_of_this_host(host, pid):
            return writer_gone_from_here(host, pid)
    try:
        return fs_now - entry.stat().st_mtime > FOREIGN_AGE
    except FileNotFoundError:
        return False
