"""The two-client fixture itself: one folder, three views, processes under their own hostnames."""
from __future__ import annotations

import os
import subprocess
import time


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_a_file_written_through_one_mount_is_read_through_the_other_and_the_origin(two_clients):
    for view in two_clients.views:
        assert view.is_dir() and not any(view.iterdir())
    (two_clients.mount_a / "hello.txt").write_text("from a\n")
    assert (two_clients.origin / "hello.txt").read_text() == "from a\n"

    def seen_through_b():
        try:
            return (two_clients.mount_b / "hello.txt").read_text() == "from a\n"
        except FileNotFoundError:
            return False
    assert wait_for(seen_through_b)


def test_the_mounts_are_two_clients_with_their_own_identities(two_clients):
    (two_clients.origin / "f").write_bytes(b"x")
    two_clients.settle()
    ids = [(st.st_dev, st.st_ino) for st in (os.stat(v / "f") for v in two_clients.views)]
    assert len({dev for dev, _ in ids}) == 3, ids
    a, b = ids[1], ids[2]
    assert a != b
    # Each mount is a filesystem of its own, not a bind of the origin.
    assert os.path.ismount(two_clients.mount_a.parent) and os.path.ismount(two_clients.mount_b.parent)


def test_a_spawned_process_has_the_hostname_given(two_clients):
    proc = two_clients.spawn(["hostname"], host="node-17", stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip() == "node-17"
    # By default the hostname names the view the process works in.
    proc = two_clients.spawn(["hostname"], cwd=two_clients.mount_b, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert out.strip() == two_clients.host_for(two_clients.mount_b) != os.uname().nodename


def test_only_the_forgetful_mounts_trust_a_not_found(two_clients, two_forgetful_clients):
    """What the grace of a new pack is for (grace.py): a name looked up, then made through the
    other client, is found at once on the plain mounts and only after 1 s on the forgetful ones."""
    def seen_after(clients, name: str) -> float:
        assert not (clients.mount_b / name).exists()
        made = time.monotonic()
        (clients.mount_a / name).write_bytes(b"x")
        while not (clients.mount_b / name).exists():
            assert time.monotonic() - made < 10
            time.sleep(0.01)
        return time.monotonic() - made
    assert seen_after(two_clients, "plain") < 0.5
    assert 0.5 < seen_after(two_forgetful_clients, "forgetful") < 3
