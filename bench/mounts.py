"""Where bench/run.py runs its workloads: the local disk, tmpfs, or a folder mounted through sshfs.

The sshfs mount is the one of tests/sharedfs.py: a private sshd on 127.0.0.1 serving a
temporary folder over SFTP, mounted with caching on as a cluster's NFS client would be
(`cache=yes,kernel_cache,attr_timeout=1,entry_timeout=1`). Every create, stat, rename and
unlink through it is a round trip to the server (0.1 to 0.9 ms here), which is what makes a
store on NFS, Lustre or GPFS slow. It needs root, sshd, sshfs and /dev/fuse; the daemon and
the mount are stopped by pid when the benchmark ends.
"""
from __future__ import annotations

import os
import sys

FILESYSTEMS = ("disk", "tmpfs", "sshfs")


class Place:
    """A folder on one kind of filesystem; `close()` undoes whatever `open_place` set up."""

    def __init__(self, kind: str, root: str, server=None):
        self.kind = kind
        self.root = root
        self.server = server

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def open_place(kind: str, disk: str, tmpfs: str) -> Place:
    """A fresh work folder on `kind`: under `disk`, under `tmpfs`, or a new sshfs mount."""
    if kind == "disk":
        os.makedirs(disk, exist_ok=True)
        return Place(kind, disk)
    if kind == "tmpfs":
        os.makedirs(tmpfs, exist_ok=True)
        return Place(kind, tmpfs)
    if kind != "sshfs":
        raise ValueError(f"unknown filesystem {kind!r}; choose from {', '.join(FILESYSTEMS)}")
    tests = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
    sys.path.insert(0, tests)
    try:
        import sharedfs   # tests/sharedfs.py (imports pytest: pip install pytest)
    finally:
        sys.path.remove(tests)
    reason = sharedfs.missing_requirement()
    if reason:
        raise RuntimeError(f"cannot mount through sshfs: {reason}")
    server = sharedfs.SharedFS()
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    root = os.path.join(str(server.mounts[0]), "bench")
    os.makedirs(root, exist_ok=True)
    return Place(kind, root, server)
