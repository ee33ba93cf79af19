"""Who may write a folder store: its owner alone, or the members of one Unix group.

A private store (the default) is writable by its owner only: folders are made
0755 and files 0644, less what the umask takes away, so nothing in it is ever
group- or world-writable, whatever the umask.

A group store's root folder belongs to the group, is group-writable and
setgid. Every folder made in it inherits the group and the setgid bit (so do
Linux's NFS and Lustre servers), and taskflow makes each folder 2770 and each
file 0640 whatever the umask: every member can make, rename and remove
entries in every folder (take over a claim, replace a damaged result, remove
a record) and read every file. No file needs to be group-writable: a file is
only ever written by the process that made it (a claim renewed by its own
worker, a pack appended to by its own writer, a journal by its own worker);
others replace or remove it, which takes the folder's write permission, not
the file's. Others (neither owner nor group) get nothing.

Where the umask takes away bits a group store's modes need (027 or 077), each
file and folder made costs one more call, a chmod; with the usual 022 or 002
only folders do.
"""
from __future__ import annotations

import errno
import grp
import os
import stat
from collections.abc import Callable

from ...errors import StoreAccessError, UsageError
from ..modes import GROUP_FILE, GROUP_FOLDER, Modes, owners, user_name


def modes_of(root: str) -> Modes:
    """The modes of the store at `root`: a group store's when the folder is setgid and
    group-writable, a private store's otherwise (also when it does not exist yet)."""
    try:
        st = os.stat(root)
    except OSError:
        return Modes()
    return Modes(st.st_gid) if is_group_folder(st) else Modes()


def is_group_folder(st: os.stat_result) -> bool:
    return bool(st.st_mode & stat.S_ISGID and st.st_mode & stat.S_IWGRP)


def group_id(name: str) -> int:
    """The id of the group `name` (a name or a number), which this user must belong to."""
    try:
        gid = int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
        grp.getgrgid(gid)
    except KeyError:
        raise UsageError(f"--group {name}: no such group on this host") from None
    if gid not in os.getgroups() and gid != os.getegid() and os.geteuid() != 0:
        raise UsageError(f"--group {name}: you ({user_name(os.geteuid())}) are not a member of group {name}")
    return gid


def check_writable(folders: list[str]) -> None:
    """StoreAccessError (exit 4) naming the first of `folders` (a store's own) that exists and that
    this process cannot write in, with its owner, group and mode. A read-only filesystem is left to
    the write that fails on it, which says so."""
    for folder in folders:
        if os.access(folder, os.W_OK | os.X_OK):
            continue
        try:
            st = os.stat(folder)
            if not stat.S_ISDIR(st.st_mode) or os.statvfs(folder).f_flag & os.ST_RDONLY:
                continue
        except OSError:
            continue
        # A FUSE or NFS client may answer access() otherwise than its server decides a write:
        # only the mode bits saying so too make it certain.
        if not _mode_lets_write(st):
            raise no_access(folder)


def _mode_lets_write(st: os.stat_result) -> bool:
    uid = os.geteuid()
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid in os.getgroups() or st.st_gid == os.getegid():
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def no_access(folder: str) -> StoreAccessError:
    """The one-line error for a folder of a store this user may not use, naming its owner and group."""
    return StoreAccessError(f"no access to {folder}: Permission denied for {user_name(os.geteuid())} "
                            f"({owners(folder)}); writing in a store takes write access to its folders: "
                            "its owner can share it with a group of yours (`taskflow store share --group "
                            "GROUP`)", path=folder)


def make_root(root: str, gid: int | None) -> None:
    """Make the store's folder, a group store's (of `gid`) when asked for, whatever the umask."""
    modes = Modes(gid)
    modes.make_folders(root)
    if gid is None:
        return
    st = os.stat(root)
    if st.st_uid == os.geteuid() and (st.st_gid != gid or not is_group_folder(st)):
        os.chown(root, -1, gid)
        os.chmod(root, GROUP_FOLDER)


def share(root: str, gid: int) -> dict[str, int]:
    """Make the store at `root` a group store of `gid`: every folder and file this user owns gets the
    group and a group store's mode. Counts of what was changed and of entries owned by others (left
    as they are). Safe to run again."""
    counts = {"folders": 0, "files": 0, "others": 0}
    me = os.geteuid()
    make_root(root, gid)

    def adjust(path: str, st: os.stat_result, mode: int, kind: str) -> None:
        if st.st_uid != me and me != 0:
            counts["others"] += 1
            return
        if st.st_gid != gid:
            os.chown(path, -1, gid, follow_symlinks=False)
        if kind == "files" and st.st_mode & stat.S_IXUSR:
            mode |= 0o110  # a job script stays one
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)
        counts[kind] += 1

    # Folders first, top down, so that what workers make meanwhile already inherits the group.
    for folder, subfolders, files in os.walk(root):
        for name in subfolders + files:
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue  # a claim given back, a temp file renamed: gone meanwhile
            if stat.S_ISLNK(st.st_mode):
                continue
            try:
                if stat.S_ISDIR(st.st_mode):
                    adjust(path, st, GROUP_FOLDER, "folders")
                else:
                    adjust(path, st, GROUP_FILE, "files")
            except FileNotFoundError:
                continue
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EACCES):
                    raise
                raise StoreAccessError(f"cannot share {path} ({owners(path)}): {e.strerror}", path=path) from None
    return counts


def join_group(root: str, name: str | None, taskfile: str | None) -> bool:
    """Make a new store at `root` a group store of `name` (or else of `group` in the taskfile's
    [tool.taskflow.store]) and say so (True); check that an existing one is one."""
    if name is None and taskfile is not None:
        from ...config import configured_group

        name = configured_group(taskfile)
    if name is None:
        return False
    gid = group_id(name)
    if not os.path.exists(root):
        make_root(root, gid)
        return True
    st = os.stat(root)
    if not is_group_folder(st) or st.st_gid != gid:
        raise UsageError(f"--group {name}: the store {root} exists and is not shared with group {name} "
                         f"({owners(root)}): `taskflow store share --group {name}` makes it so")
    return False


def share_store(root: str, group: str, exists: bool, lock_names: Callable[[], list[str]]) -> dict[str, int]:
    """`share` for `taskflow store share`, with the claims held meanwhile counted."""
    if not exists:
        raise UsageError(f"{root} is not a taskflow store yet: `taskflow execute FILE --group {group}` "
                         "makes a group store from the start")
    gid = group_id(group)
    claims = sum(".takeover." not in n for n in lock_names())
    return dict(share(root, gid), claims=claims)
