"""Whether a pickled result of a folder store may be unpickled: who could have written it.

Unpickling runs code: whoever can write a result file, or replace it by
writing in a folder above it, can run code in every worker and notebook that
loads it. So before a pickled result is loaded, the file and every folder
from its own up to the filesystem's root must be writable by no one but this
user and root, and, in a group store (sharing.py), the members of the store's
group:

- the owner of each must be one of them (an owner can always change the mode);
- a group-writable one must belong to the store's group;
- a world-writable one is refused, and so is a group-writable one of another
  group, unless it is a folder with the sticky bit (/tmp): there, others can
  neither rename nor remove what is not theirs, and what is ours is checked
  in its own right.

The file is judged by fstat of the descriptor it is read from, so the file
checked is the file read. Folders are judged once per process; they are not
expected to change hands while a command runs.

numpy results need no such check: an .npy header is parsed as a literal
(numpy's own parser evaluates no code) and an array of objects is refused
(segments.py, bigread.py), so loading one runs nothing. `--trust-store`,
TASKFLOW_TRUST=1 or `taskflow.init(..., trust=True)` skip the check.
"""
from __future__ import annotations

import grp
import os
import pwd
import stat

from ...errors import UntrustedResultError
from ..modes import group_name, user_name


class Trust:
    """The judge of one store's results for this process."""

    def __init__(self, gid: int | None):
        self.gid = gid  # the store's group (Modes.gid), None for a private store
        self.me = os.geteuid()
        self._members: dict[int, bool] = {}
        self._groups: dict[int, bool] = {}
        self._packs: set[str] = set()
        self._folders: dict[str, str | None] = {}
        self._trusted_chains: set[str] = set()  # folders judged fine up to the root

    def check(self, path: str, st: os.stat_result) -> None:
        """UntrustedResultError naming `path` (or a folder above it) and who can write it, unless
        the result at `path`, whose stat is `st`, may be unpickled."""
        why = self._judge(st, folder=False)
        if why:
            raise UntrustedResultError(path, why)
        first = folder = os.path.dirname(path)
        if first in self._trusted_chains:
            return
        whole = True
        while True:
            why = self._folders.get(folder, "")
            if why == "":
                try:
                    why = self._folders[folder] = self._judge(os.stat(folder), folder=True)
                except OSError:
                    why, whole = None, False  # gone meanwhile: judged again next time
            if why:
                raise UntrustedResultError(folder, why)
            parent = os.path.dirname(folder)
            if parent == folder:
                if whole:
                    self._trusted_chains.add(first)
                return
            folder = parent

    def check_pack(self, path: str) -> None:
        """`check` of a pack file, judged once per process (only its own writer appends to it)."""
        if path not in self._packs:
            self.check(path, os.stat(path))
            self._packs.add(path)

    def _judge(self, st: os.stat_result, folder: bool) -> str | None:
        """Why others than the trusted can write what `st` describes; None when no one can."""
        mode = st.st_mode
        sticky = folder and bool(mode & stat.S_ISVTX)
        if not self._trusted_user(st.st_uid):
            return f"owned by {user_name(st.st_uid)}, whom this store does not trust{self._group_note()}"
        if mode & stat.S_IWOTH and not sticky:
            return "writable by every user"
        if mode & stat.S_IWGRP and not sticky and st.st_gid != self.gid and not self._only_trusted(st.st_gid):
            return f"writable by group {group_name(st.st_gid)}{self._group_note()}"
        return None

    def _group_note(self) -> str:
        return f" (the store's group is {group_name(self.gid)})" if self.gid is not None else " (a private store)"

    def _trusted_user(self, uid: int) -> bool:
        if uid in (self.me, 0):
            return True
        if self.gid is None:
            return False
        known = self._members.get(uid)
        if known is None:
            known = self._members[uid] = _member(uid, self.gid)
        return known

    def _only_trusted(self, gid: int) -> bool:
        """A user private group (most distributions give each user one, named as the user) of a
        trusted user, with no other member than trusted users: /home/alice at 0775 with umask 002."""
        known = self._groups.get(gid)
        if known is None:
            try:
                group = grp.getgrgid(gid)
                user = pwd.getpwnam(group.gr_name)
                members = [pwd.getpwnam(name).pw_uid for name in group.gr_mem]
            except KeyError:
                members, user = [], None
            known = self._groups[gid] = user is not None and user.pw_gid == gid and all(
                self._trusted_user(uid) for uid in [user.pw_uid, *members])
        return known


def _member(uid: int, gid: int) -> bool:
    try:
        user = pwd.getpwuid(uid)
        group = grp.getgrgid(gid)
    except KeyError:
        return False
    return user.pw_gid == gid or user.pw_name in group.gr_mem
