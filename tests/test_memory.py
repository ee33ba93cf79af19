import numpy as np
import pytest

from taskflow import memory

MIB = 2**20


def _resident_bytes() -> int:
    """This process's resident memory now: what a fresh per-task peak starts from. A whole test
    session imports much (Dask, ipyparallel...), so that is well above a bare interpreter's."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.parametrize("mode", ["rusage", "status"])
def test_peak_of_each_task_is_its_own(mode):
    meter = memory._Meter()
    if meter.mode == "lifetime":
        pytest.skip("per-task peaks need Linux's /proc/self/clear_refs")
    meter.peak_bytes()  # arm
    if meter.mode not in ("rusage", "status"):
        pytest.skip(f"this host measures only the lifetime peak ({meter.mode})")
    meter.mode = mode
    before = _resident_bytes()
    big = np.ones(200 * MIB // 8)
    del big
    big_peak = meter.peak_bytes()
    assert big_peak > 200 * MIB and big_peak > before + 150 * MIB
    small = np.ones(MIB // 8)
    del small
    # The 200 MB are not counted again: this peak is about what the process holds now.
    assert meter.peak_bytes() < _resident_bytes() + 50 * MIB
    assert meter.peak_bytes() < big_peak - 150 * MIB


def test_inherited_floor_falls_back_to_status(monkeypatch):
    meter = memory._Meter()
    if meter.mode == "lifetime":
        pytest.skip("per-task peaks need Linux's /proc/self/clear_refs")
    real = memory._maxrss_kib
    monkeypatch.setattr(memory, "_maxrss_kib", lambda: real() + 500 * 1024)  # as if exec'd from a 500 MB parent
    meter.peak_bytes()
    assert meter.mode == "status"
    # Not the 500 MB of the pretended parent: about what this process holds now.
    assert meter.peak_bytes() < _resident_bytes() + 50 * MIB
