"""`taskflow doctor` on the local disk and on two clients of one shared folder, and the lease
warning of `execute` that its record feeds."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskflow import doctor_checks, doctor_clock, doctor_peer
from taskflow.stores.folder import needs as fsneeds
from taskflow.cli import main
from taskflow.stores.folder.store import MARKER, FolderStore as Store

from conftest import run_cli, write_taskfile

CHECKS = ["exclusive create", "rename", "link", "O_TMPFILE", "time stamps", "clock offset", "cache lag", "lease"]

TASKFILE = """
from taskflow import TaskGenerator

@TaskGenerator
def square(x):
    return x * x

results = [square(i) for i in range(6)]
"""


@pytest.fixture(autouse=True)
def _logging_left_as_found():
    """Commands invoked in this process set up taskflow's logger for a terminal; undo that, so
    that later tests' caplog still sees its records."""
    logger = logging.getLogger("taskflow")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def _lines(stdout: str) -> dict[str, str]:
    """check name -> verdict, from the human output."""
    verdicts = {}
    for line in stdout.splitlines()[1:]:
        for name in CHECKS + ["listing lag"]:
            if line.startswith(name + "  "):
                verdicts[name] = line[len(name):].split()[0]
    return verdicts


def _no_scratch(store: Path) -> None:
    assert not (store / "doctor").exists(), list((store / "doctor").rglob("*"))
    if (store / "tmp").exists():
        assert list((store / "tmp").iterdir()) == []


# -- the local disk -------------------------------------------------------------------------

def test_doctor_passes_on_a_local_disk_and_records_what_the_store_needs(tmp_path):
    store = tmp_path / "store"
    proc = run_cli("doctor", "--store", store, check=0)
    assert proc.stdout.splitlines()[0].startswith(f"store {store} on ")
    verdicts = _lines(proc.stdout)
    assert list(verdicts) == CHECKS, proc.stdout  # no listing lag without a second client
    assert verdicts["cache lag"] == "skip"
    assert all(v in ("ok", "note") for k, v in verdicts.items() if k != "cache lag"), proc.stdout
    assert "0 double wins" in proc.stdout and "8 processes x 500 rounds" in proc.stdout
    _no_scratch(store)
    needs = json.loads((store / "doctor.json").read_text())
    assert needs["min_lease"] == 1.0 and needs["lag"] is None and needs["whole_seconds"] is False
    assert 0 < needs["granularity"] < 0.1
    # The store doctor made is one every command accepts.
    write_taskfile(tmp_path, TASKFILE)
    run_cli("execute", tmp_path / "taskfile.py", "--store", store, "-q", check=0)


def test_doctor_json_has_every_check_with_figure_and_verdict(tmp_path):
    write_taskfile(tmp_path, TASKFILE)
    proc = run_cli("doctor", tmp_path / "taskfile.py", "--json", check=0)
    report = json.loads(proc.stdout)
    store = tmp_path / "taskfile.taskflow"  # FILE alone: the store beside it
    assert report["store"] == str(store)
    assert report["unsafe"] is False and report["lease"] == 300
    assert [c["name"] for c in report["checks"]] == CHECKS
    for check in report["checks"]:
        assert set(check) == {"name", "verdict", "figure", "data"}
        assert check["verdict"] in ("ok", "note", "skip") and check["figure"]
    race = report["checks"][0]["data"]
    assert race["double_wins"] == 0 and race["racers"] == 8 and race["rounds"] == 500
    assert race["collisions"] > 0 and set(race["lost_race_errno"]) == {"EEXIST"}
    assert report["needs"]["min_lease"] == json.loads((store / "doctor.json").read_text())["min_lease"]
    _no_scratch(store)


def test_doctor_needs_a_store(tmp_path):
    proc = run_cli("doctor", cwd=tmp_path, check=2)
    assert "FILE, --store DIR or TASKFLOW_STORE" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("doctor", "--store", tmp_path / "s", "--peer-path", tmp_path / "no" / "such", check=2)
    assert "--peer-path" in proc.stderr and "Traceback" not in proc.stderr


def _whole_seconds(folder: str, limit: float = 0) -> doctor_clock.Clock:
    return doctor_clock.Clock(granularity=1.0, whole_seconds=True, offset=0.0, uncertainty=0.001, samples=20,
                             seconds=0.5)


def test_a_lease_shorter_than_the_store_needs_is_unsafe(tmp_path, monkeypatch):
    # As if the store had whole-second time stamps: it then needs at least 2 s.
    monkeypatch.setattr(doctor_clock, "sample_clock", _whole_seconds)
    store = tmp_path / "store"
    result = CliRunner().invoke(main, ["doctor", "--store", str(store), "--lease", "1"])
    assert result.exit_code == 1, result.output
    lease_line = [line for line in result.output.splitlines() if line.startswith("lease ")][0]
    assert "unsafe" in lease_line and "1 s is shorter than this store needs (2 s" in lease_line
    assert "--lease 2" in lease_line
    assert json.loads((store / "doctor.json").read_text())["min_lease"] == 2.0
    result = CliRunner().invoke(main, ["doctor", "--store", str(store)], env={"TASKFLOW_LEASE": "1"})
    assert result.exit_code == 1
    result = CliRunner().invoke(main, ["doctor", "--store", str(store), "--lease", "2"])
    assert result.exit_code == 0, result.output
    _no_scratch(store)


def test_an_exclusive_create_that_is_not_exclusive_is_unsafe(tmp_path, monkeypatch):
    # A filesystem that ignores O_EXCL: every racer wins every round.
    monkeypatch.setattr(os, "O_EXCL", 0)
    store = tmp_path / "store"
    result = CliRunner().invoke(main, ["doctor", "--store", str(store), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    race = report["checks"][0]
    assert race["verdict"] == "unsafe" and race["data"]["double_wins"] == 500 and report["unsafe"] is True
    _no_scratch(store)


def test_a_rename_that_is_not_atomic_is_unsafe(tmp_path, monkeypatch):
    # Rename over a file done as truncate-and-copy: a reader sees the file half-written.
    def copy_over(src, dst):
        with open(src, "rb") as f:
            data = f.read()
        with open(dst, "r+b") as f:
            f.truncate(0)
            for i in range(0, len(data), 512):
                f.write(data[i:i + 512])
                f.flush()
        os.unlink(src)

    monkeypatch.setattr(os, "replace", copy_over)
    check = doctor_checks.check_rename(str(tmp_path), seconds=1.0)
    assert check.verdict == "unsafe" and check.data["torn"] > 0, check.figure


def test_scratch_is_removed_on_ctrl_c_and_sigterm(tmp_path):
    for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 130)):
        store = tmp_path / f"store{signum}"
        # --peer waits for another doctor that never comes: interrupted while it waits.
        proc = subprocess.Popen([sys.executable, "-m", "taskflow", "doctor", "--store", str(store), "--peer"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not (store / "doctor" / "peer" / "writer").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == code, (out, err)
        assert "Traceback" not in err
        _no_scratch(store)


def test_peer_that_never_comes_is_a_skip(tmp_path):
    store = tmp_path / "store"
    proc = run_cli("doctor", "--store", store, "--peer", "--peer-wait", "1", check=0)
    assert "cache lag" in proc.stdout and "no other `taskflow doctor --peer` answered" in proc.stdout
    _no_scratch(store)


def test_two_doctors_with_peer_on_one_host_meet_but_do_not_trust_the_lag(tmp_path):
    store = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, "-m", "taskflow", "doctor", "--store", str(store), "--peer",
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, (out, err)
        lag = next(c for c in json.loads(out)["checks"] if c["name"] == "cache lag")
        assert lag["verdict"] == "skip" and "ran on this host too" in lag["figure"], lag
    _no_scratch(store)


def test_peer_path_measures_through_a_second_path_to_the_store(tmp_path):
    store = tmp_path / "store"
    (tmp_path / "link").symlink_to(store)  # a second path to the same folder (no second cache here)
    proc = run_cli("doctor", "--store", store, "--peer-path", tmp_path / "link", "--json", check=0)
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    lag = checks["cache lag"]
    assert lag["verdict"] == "ok" and lag["data"]["role"] in ("writer", "watcher")
    assert set(lag["data"]["lags"]) == set(doctor_peer.KINDS)
    assert all(v is not None and v < 1 for v in lag["data"]["lags"].values()), lag
    assert checks["listing lag"]["verdict"] == "ok"
    assert checks["exclusive create"]["data"]["views"] == 2
    assert checks["exclusive create"]["data"]["double_wins"] == 0
    _no_scratch(store)


def test_a_run_without_peer_keeps_the_lag_measured_before(tmp_path):
    store = tmp_path / "store"
    _needs(store, 9.0)  # as left by `doctor --peer`: a lag of 2.5 s
    proc = run_cli("doctor", "--store", store, "--json", check=0)
    report = json.loads(proc.stdout)
    lag = next(c for c in report["checks"] if c["name"] == "cache lag")
    assert lag["verdict"] == "skip" and "keeping the 2.5 s measured" in lag["figure"]
    assert report["needs"]["lag"] == 2.5 and report["needs"]["min_lease"] >= 5
    run_cli("doctor", "--store", store, "--lease", "4", check=1)


def test_minimum_lease():
    assert fsneeds.minimum_lease(0.000001, 0.0) == 1.0
    assert fsneeds.minimum_lease(1.0, 0.0) == 2.0
    assert fsneeds.minimum_lease(1.0, 1.0) == 4.0
    assert fsneeds.minimum_lease(1.0, 1.01) == 5.0
    # Above the floor at which a renewed claim could look stale, whatever the figures.
    for g, lag in ((1.0, 3.5), (2.0, 10.0), (0.004, 0.2)):
        lease = fsneeds.minimum_lease(g, lag)
        assert lease / 4 + g + lag < lease


# -- the execute warning -----------------------------------------------------------------------

def _needs(store: Path, min_lease: float) -> None:
    Store(str(store)).ensure()
    (store / fsneeds.NEEDS_FILE).write_text(json.dumps(
        {"granularity": 1.0, "whole_seconds": True, "lag": 2.5, "min_lease": min_lease}))


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "shorter than this store needs" in line]


def test_execute_warns_once_when_the_lease_is_shorter_than_doctor_measured(tmp_path):
    path = write_taskfile(tmp_path, TASKFILE)
    store = tmp_path / "taskfile.taskflow"
    _needs(store, 9.0)
    proc = run_cli("execute", path, "--lease", "3", check=0)
    warned = _warnings(proc.stderr)
    assert len(warned) == 1, proc.stderr
    assert warned[0].startswith("taskflow: warning: the lease (3 s) is shorter than this store needs (9 s")
    assert "taskflow doctor" in warned[0] and "--lease 9" in warned[0]
    run_cli("invalidate", path, "--target", "square", check=0)
    proc = run_cli("execute", path, "--jobs", "3", check=0, env={"TASKFLOW_LEASE": "3"})
    assert len(_warnings(proc.stderr)) == 1, proc.stderr
    run_cli("invalidate", path, "--target", "square", check=0)
    proc = run_cli("execute", path, "--jobs", "2", "--lease", "9", check=0)
    assert _warnings(proc.stderr) == []


def test_execute_warns_about_whole_second_stamps_without_a_doctor_record(tmp_path):
    path = write_taskfile(tmp_path, TASKFILE)
    store = tmp_path / "taskfile.taskflow"
    Store(str(store)).ensure()
    whole = (int(time.time()) - 10) * 1_000_000_000
    os.utime(store / MARKER, ns=(whole, whole))  # as an SFTP or old NFS server stamps files
    proc = run_cli("execute", path, "--lease", "1", check=0)
    warned = _warnings(proc.stderr)
    assert len(warned) == 1 and "whole seconds" in warned[0] and "taskflow doctor" in warned[0], proc.stderr
    run_cli("invalidate", path, "--target", "square", check=0)
    assert _warnings(run_cli("execute", path, "--lease", "2", check=0).stderr) == []


def test_execute_does_not_warn_after_doctor_on_a_local_disk(tmp_path):
    path = write_taskfile(tmp_path, TASKFILE)
    run_cli("doctor", path, check=0)
    proc = run_cli("execute", path, "--lease", "1", check=0)
    assert _warnings(proc.stderr) == [], proc.stderr


# -- two clients of one shared folder (sshfs) ----------------------------------------------------

def test_doctor_through_two_mounts_finds_cache_lag_and_whole_seconds(two_clients):
    store_a, store_b = two_clients.mount_a / "store", two_clients.mount_b / "store"
    proc = run_cli("doctor", "--store", store_a, "--peer-path", store_b, "--lease", "2", "--json", timeout=180)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)  # the 2 s lease is too short there
    report = json.loads(proc.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert "fuse.sshfs" in report["filesystem"]
    assert [n for n, c in checks.items() if c["verdict"] == "unsafe"] == ["lease"]
    assert checks["time stamps"]["data"]["whole_seconds"] is True
    assert checks["time stamps"]["data"]["granularity"] == 1.0
    lags = checks["cache lag"]["data"]["lags"]
    assert max(lags[k] for k in doctor_peer.CLAIM_KINDS) > 0.5, lags  # attr_timeout=1
    assert lags["renewal"] > 0.5
    assert checks["exclusive create"]["data"]["double_wins"] == 0
    assert checks["exclusive create"]["data"]["views"] == 2
    assert checks["create between clients"]["data"]["double_wins"] == 0
    assert checks["O_TMPFILE"]["data"]["supported"] is False
    needs = json.loads((two_clients.origin / "store" / "doctor.json").read_text())
    assert needs["min_lease"] > 2 and needs["lag"] > 0.5 and needs["granularity"] == 1.0
    assert not (two_clients.origin / "store" / "doctor").exists()
    # What doctor recorded makes execute on another client warn about the short lease.
    path = write_taskfile(two_clients.mount_b, TASKFILE)
    proc = run_cli("execute", path, "--store", store_b, "--lease", "2", "-q", check=0, timeout=180)
    warned = _warnings(proc.stderr)
    assert len(warned) == 1 and f"({needs['min_lease']:g} s" in warned[0], proc.stderr


def test_two_doctors_on_two_hosts_meet_through_the_shared_folder(two_clients):
    procs = [two_clients.spawn([sys.executable, "-m", "taskflow", "doctor", "--store", str(view / "store"),
                                "--peer", "--json"], host=host, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
             for view, host in ((two_clients.mount_a, "node-a"), (two_clients.mount_b, "node-b"))]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, (out, err)
        reports.append(json.loads(out))
    lags = [next(c for c in r["checks"] if c["name"] == "cache lag")["data"] for r in reports]
    assert {d["peer"].split()[0] for d in lags} == {"node-a", "node-b"}
    for d in lags:
        assert d["lags"]["renewal"] > 0.5
    for r in reports:
        checks = {c["name"]: c for c in r["checks"]}
        assert checks["time stamps"]["data"]["whole_seconds"] is True
        between = checks["create between clients"]
        assert between["verdict"] == "ok" and between["data"]["double_wins"] == 0, between
        assert between["data"]["racers"] == 8 and between["data"]["unwon_rounds"] == 0
    assert not (two_clients.origin / "store" / "doctor").exists()


@pytest.mark.parametrize("where", ["right after taking the role", "while writing the party file"])
def test_a_peer_interrupted_as_it_takes_its_role_leaves_no_party_file(tmp_path, monkeypatch, where):
    """Ctrl-C or SIGTERM may come between the exclusive create of `writer` and the protocol."""
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "right after taking the role":
        monkeypatch.setattr(doctor_peer, "_Refresher", interrupt)
    else:
        monkeypatch.setattr(doctor_peer.json, "dump", interrupt)
    with pytest.raises(KeyboardInterrupt):
        doctor_peer.meet(str(tmp_path), _whole_seconds(str(tmp_path)), wait=1)
    peer = tmp_path / "doctor" / "peer"
    assert not (peer / "writer").exists() and not (peer / "watcher").exists(), list(tmp_path.rglob("*"))


def test_a_peer_interrupted_as_its_exclusive_create_returns_leaves_no_party_file(tmp_path, monkeypatch):
    """The signal comes the moment `writer` exists, before the doctor holds its descriptor."""
    real_open = os.open

    def open_then_interrupted(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if str(path).endswith("writer"):
            os.kill(os.getpid(), signal.SIGINT)
        return fd

    monkeypatch.setattr(doctor_peer.os, "open", open_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        doctor_peer.meet(str(tmp_path), _whole_seconds(str(tmp_path)), wait=1)
    monkeypatch.undo()
    peer = tmp_path / "doctor" / "peer"
    assert not (peer / "writer").exists() and not (peer / "watcher").exists(), list(tmp_path.rglob("*"))


def test_doctor_says_in_one_line_that_it_needs_a_folder_store(tmp_path):
    from taskflow.doctor import diagnose
    from taskflow.errors import UsageError
    from taskflow.stores.base import Store

    class Elsewhere(Store):  # another kind of store, as far as doctor can tell
        url = "other://server/0"

    Elsewhere.__abstractmethods__ = frozenset()
    other = Elsewhere()
    with pytest.raises(UsageError, match="folder store; other://server/0 is not one") as e:
        diagnose(other, 300)
    assert "\n" not in str(e.value)
    assert other.lease_advice(1.0) is None, "only a filesystem has time stamps to warn about"
