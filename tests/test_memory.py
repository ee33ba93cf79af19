import numpy as np
import pytest

from taskflow import memory

MIB = 2**20


@pytest.mark.parametrize("mode", ["rusage", "status"])
def test_peak_of_each_task_is_its_own(mode):
    meter = memory._Meter()
    if meter.mode == "lifetime":
        pytest.skip("per-task peaks need Linux's /proc/self/clear_refs")
    meter.peak_bytes()  # arm
    if meter.mode not in ("rusage", "status"):
        pytest.skip(f"this host measures only the lifetime peak ({meter.mode})")
    meter.mode = mode
    big = np.ones(200 * MIB // 8)
    del big
    assert meter.peak_bytes() > 200 * MIB
    small = np.ones(MIB // 8)
    del small
    assert meter.peak_bytes() < 150 * MIB


def test_inherited_floor_falls_back_to_status(monkeypatch):
    meter = memory._Meter()
    if meter.mode == "lifetime":
        pytest.skip("per-task peaks need Linux's /proc/self/clear_refs")
    real = memory._maxrss_kib
    monkeypatch.setattr(memory, "_maxrss_kib", lambda: real() + 500 * 1024)  # as if exec'd from a 500 MB parent
    meter.peak_bytes()
    assert meter.mode == "status"
    assert meter.peak_bytes() < 150 * MIB
