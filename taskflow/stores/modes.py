"""The modes of the files and folders taskflow makes in a store, whatever the umask (see
stores/folder/sharing.py for private and group stores)."""
from __future__ import annotations

import grp
import os
import pwd
import stat

PRIVATE_FOLDER, PRIVATE_FILE = 0o755, 0o644
GROUP_FOLDER, GROUP_FILE = 0o2770, 0o640


def current_umask() -> int:
    """This process's umask, read without changing it where Linux says it (/proc, since 4.7)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # set and put back: a thread making a file meanwhile gets 022
    os.umask(mask)
    return mask


class Modes:
    """The modes of what a store's writer makes: one object per store and process."""

    def __init__(self, gid: int | None = None, umask: int | None = None):
        self.gid = gid
        self.folder = PRIVATE_FOLDER if gid is None else GROUP_FOLDER
        self.file = PRIVATE_FILE if gid is None else GROUP_FILE
        mask = current_umask() if umask is None else umask
        # A private store takes what the umask leaves: it only ever removes bits.
        self.fix_files = gid is not None and bool(mask & self.file)
        self.fix_folders = gid is not None and bool(mask & self.folder & 0o777)

    @property
    def shared(self) -> bool:
        return self.gid is not None

    def made(self, fd: int) -> None:
        """Give a file just made by this process its mode, where the umask took some of it."""
        if self.fix_files:
            os.fchmod(fd, self.file)

    def create(self, path: str) -> int:
        """A new file at `path` (FileExistsError if there is one), open for writing, with its mode."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, self.file)
        try:
            self.made(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def make_empty(self, path: str) -> None:
        """An empty file at `path` unless there is one (another user's may be there: it is not opened)."""
        try:
            os.close(self.create(path))
        except FileExistsError:
            pass

    def make_folders(self, path: str) -> None:
        """`os.makedirs(path, exist_ok=True)`, each folder made with this store's mode; safe when
        other workers make the same folders at the same time."""
        try:
            os.mkdir(path, self.folder)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
            return
        except FileNotFoundError:
            parent = os.path.dirname(path)
            if parent == path:
                raise
            self.make_folders(parent)
            try:
                os.mkdir(path, self.folder)
            except FileExistsError:
                return
        if self.fix_folders:
            os.chmod(path, self.folder)


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def owners(path: str) -> str:
    """"owner USER, group GROUP, mode 0755" of `path`, for messages; "" when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    return f"owner {user_name(st.st_uid)}, group {group_name(st.st_gid)}, mode {stat.S_IMODE(st.st_mode):04o}"


# What a private store makes, whatever the umask: the umask only ever takes bits away.
PRIVATE = Modes(umask=0)
