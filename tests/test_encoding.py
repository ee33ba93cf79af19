"""The result file format: round trips, integrity checks, memory mapping."""
from __future__ import annotations

import json
import mmap as mmap_module
import os

import numpy as np
import pytest

from taskflow import encoding
from taskflow.errors import CorruptResultError


def roundtrip(tmp_path, value, mmap=False):
    path = tmp_path / "r"
    with open(path, "wb") as f:
        size = encoding.Payload(value, {"name": "m.f"}).write(f.fileno())
    assert size == os.path.getsize(path)
    return encoding.load(str(path), mmap=mmap)


def make_closure():
    factor = 3
    return lambda x: x * factor


@pytest.mark.parametrize("value", [
    None, 0, 1.5, "text", b"", [], {}, (), set(), {"a": [1, (2, 3)], "b": None},
    np.float32(2.5), np.array([], dtype=np.int8), np.arange(10).reshape(2, 5),
])
def test_roundtrip(tmp_path, value):
    loaded, meta = roundtrip(tmp_path, value)
    assert meta == {"name": "m.f"}
    if isinstance(value, np.ndarray):
        assert loaded.dtype == value.dtype and loaded.shape == value.shape
        assert np.array_equal(loaded, value)
    else:
        assert loaded == value and type(loaded) is type(value)


def test_arrays_in_containers_go_out_of_band_and_come_back_writable(tmp_path):
    value = {"a": np.arange(100000, dtype=np.float64), "b": [np.ones((3, 4), order="F")]}
    loaded, _ = roundtrip(tmp_path, value)
    assert np.array_equal(loaded["a"], value["a"])
    assert np.array_equal(loaded["b"][0], value["b"][0])
    loaded["a"][0] = 42.0  # loaded results belong to the caller
    header = encoding.read_meta(str(tmp_path / "r"))
    assert header == {"name": "m.f"}


def test_fortran_and_non_contiguous_arrays(tmp_path):
    f = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    loaded, _ = roundtrip(tmp_path, f)
    assert np.array_equal(loaded, f)
    view = np.arange(20.0).reshape(4, 5)[::2, ::2]
    loaded, _ = roundtrip(tmp_path, view)
    assert np.array_equal(loaded, view)


def test_cloudpickle_takes_over_for_lambdas(tmp_path):
    loaded, _ = roundtrip(tmp_path, {"f": make_closure()})
    assert loaded["f"](2) == 6


def test_mmap_returns_read_only_arrays(tmp_path):
    arr = np.arange(1000, dtype=np.int64)
    loaded, _ = roundtrip(tmp_path, arr, mmap=True)
    assert np.array_equal(loaded, arr)
    assert not loaded.flags.writeable
    nested, _ = roundtrip(tmp_path, {"x": arr}, mmap=True)
    assert np.array_equal(nested["x"], arr)


def test_truncated_file_is_detected(tmp_path):
    path = tmp_path / "r"
    with open(path, "wb") as f:
        encoding.Payload(np.arange(1000), {}).write(f.fileno())
    size = os.path.getsize(path)
    os.truncate(path, size - 10)
    with pytest.raises(CorruptResultError, match="truncated"):
        encoding.load(str(path))
    with pytest.raises(CorruptResultError, match=str(path)):
        encoding.load(str(path), mmap=True)
    os.truncate(path, 3)
    with pytest.raises(CorruptResultError, match="too short"):
        encoding.load(str(path))


def test_flipped_byte_is_detected(tmp_path):
    path = tmp_path / "r"
    with open(path, "wb") as f:
        encoding.Payload({"x": list(range(100))}, {}).write(f.fileno())
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptResultError, match="checksum"):
        encoding.load(str(path))


def test_not_a_result_file(tmp_path):
    path = tmp_path / "r"
    path.write_bytes(b"hello world, this is not a result")
    with pytest.raises(CorruptResultError, match="magic"):
        encoding.load(str(path))


def test_large_array_roundtrip_and_mmap(tmp_path):
    # 200 MB of float64, as users store simulation outputs.
    arr = np.random.default_rng(0).random(25_000_000)
    loaded, _ = roundtrip(tmp_path, arr)
    assert np.array_equal(loaded, arr)
    del loaded
    mapped, _ = roundtrip(tmp_path, arr, mmap=True)
    assert mapped.shape == arr.shape and mapped[12345] == arr[12345]
    assert not mapped.flags.writeable
    assert isinstance(_backing(mapped), mmap_module.mmap), "the array must be a view of the mapped file"


def _backing(arr):
    """What an array's memory finally belongs to, through views and memoryviews."""
    owner = arr
    while isinstance(owner, (np.ndarray, memoryview)):
        owner = owner.obj if isinstance(owner, memoryview) else owner.base
    return owner


@pytest.mark.parametrize("order", ["C", "F"])
def test_large_arrays_are_checked_while_read(tmp_path, order):
    arr = np.asarray(np.random.default_rng(3).random((700, 400)), order=order)  # 2.2 MB
    loaded, _ = roundtrip(tmp_path, arr)
    assert np.array_equal(loaded, arr) and loaded.flags.writeable
    assert loaded.flags.f_contiguous == (order == "F")
    path = tmp_path / "r"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptResultError, match="checksum"):
        encoding.load(str(path))
    os.truncate(path, len(data) - 1)
    with pytest.raises(CorruptResultError, match="truncated"):
        encoding.load(str(path))


@pytest.mark.parametrize("value", [12345, {"k": list(range(1000))}, np.arange(100_000.0), [np.arange(300_000.0), 2]])
def test_short_writes_are_continued(tmp_path, monkeypatch, value):
    """The kernel may write less than asked (signals, pipes, network filesystems)."""
    real_write, real_writev = os.write, os.writev
    monkeypatch.setattr(encoding.os, "write", lambda fd, data: real_write(fd, bytes(memoryview(data)[:7])))
    monkeypatch.setattr(encoding.os, "writev", lambda fd, bufs: real_write(fd, bytes(memoryview(bufs[0])[:4099])))
    loaded, _ = roundtrip(tmp_path, value)
    if isinstance(value, np.ndarray):
        assert np.array_equal(loaded, value)
    elif isinstance(value, list):
        assert np.array_equal(loaded[0], value[0]) and loaded[1] == 2
    else:
        assert loaded == value


def test_large_data_is_checksummed_while_written_and_the_header_goes_in_last(tmp_path, monkeypatch):
    import zlib

    value = np.random.default_rng(1).random(1_000_000)  # 8 MB: above the overlap threshold
    path = tmp_path / "big"
    real_writev = os.writev
    monkeypatch.setattr(encoding.os, "writev", lambda fd, bufs: real_writev(fd, [memoryview(bufs[0])[:1 << 20]]))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        size = encoding.Payload(value, {"name": "m.big"}).write(fd)
    finally:
        os.close(fd)
    assert size == os.path.getsize(path)
    loaded, meta = encoding.load(str(path))
    assert np.array_equal(loaded, value) and meta == {"name": "m.big"}
    header, start = encoding._parse_header(str(path), path.read_bytes()[:65536], size)
    assert header.crc32 == zlib.crc32(path.read_bytes()[start:])
    with open(path, "r+b") as f:
        f.seek(size - 1000)
        byte = f.read(1)[0]
        f.seek(size - 1000)
        f.write(bytes([byte ^ 0xFF]))
    with pytest.raises(CorruptResultError):
        encoding.load(str(path))


def test_header_read_without_a_json_parser_matches_the_full_one(tmp_path):
    from taskflow.encoding import _FIXED_HEAD, _PREFIX

    meta = {"name": "m.f", "host": "h\u00e9", "nested": {"a": [1, 2]}, "duration": 0.5}
    path = tmp_path / "r"
    with open(path, "wb") as f:
        encoding.Payload({"x": np.arange(5)}, meta).write(f.fileno())
    data = path.read_bytes()
    raw = data[_PREFIX.size:_PREFIX.size + _PREFIX.unpack_from(data)[1]]
    assert _FIXED_HEAD.match(raw), "the writer's header must take the fast path"
    header, _ = encoding._parse_header(str(path), data, len(data))
    full = json.loads(raw)
    assert (header.crc32, header.kind, header.segments, header.meta) == (
        full["crc32"], full["kind"], full["segments"], full["meta"])
    assert encoding.read_meta(str(path)) == meta
    value = encoding.load_value(str(path))
    assert list(value) == ["x"] and np.array_equal(value["x"], np.arange(5))


def test_header_in_another_key_order_is_read_by_the_json_parser(tmp_path):
    path = tmp_path / "r"
    with open(path, "wb") as f:
        encoding.Payload("text", {"name": "m.f"}).write(f.fileno())
    data = path.read_bytes()
    prefix = encoding._PREFIX
    end = prefix.size + prefix.unpack_from(data)[1]
    header = json.loads(data[prefix.size:end])
    reordered = json.dumps({"meta": header["meta"], "segments": header["segments"], "kind": header["kind"],
                            "crc32": header["crc32"]}).encode()
    path.write_bytes(prefix.pack(encoding.MAGIC, len(reordered)) + reordered + data[end:])
    assert encoding.load(str(path)) == ("text", {"name": "m.f"})
