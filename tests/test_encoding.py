"""The result file format: round trips, integrity checks, memory mapping."""
from __future__ import annotations

import json
import mmap as mmap_module
import os
from pathlib import Path

import numpy as np
import pytest

from taskflow import checksum, encoding
from taskflow.errors import CorruptResultError


def load(path: str, mmap: bool = False):
    """(value, meta) of a result file, as a store reads them."""
    return encoding.load_value(path, mmap=mmap), encoding.read_meta(path)


def roundtrip(tmp_path, value, mmap=False):
    path = tmp_path / "r"
    with open(path, "wb") as f:
        size = encoding.Payload(value, {"name": "m.f"}).write(f.fileno())
    assert size == os.path.getsize(path)
    return load(str(path), mmap=mmap)


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
        load(str(path))
    with pytest.raises(CorruptResultError, match=str(path)):
        load(str(path), mmap=True)
    os.truncate(path, 3)
    with pytest.raises(CorruptResultError, match="too short"):
        load(str(path))


def test_flipped_byte_is_detected(tmp_path):
    path = tmp_path / "r"
    with open(path, "wb") as f:
        encoding.Payload({"x": list(range(100))}, {}).write(f.fileno())
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptResultError, match="checksum"):
        load(str(path))


def test_not_a_result_file(tmp_path):
    path = tmp_path / "r"
    path.write_bytes(b"hello world, this is not a result")
    with pytest.raises(CorruptResultError, match="magic"):
        load(str(path))


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
        load(str(path))
    os.truncate(path, len(data) - 1)
    with pytest.raises(CorruptResultError, match="truncated"):
        load(str(path))


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
    loaded, meta = load(str(path))
    assert np.array_equal(loaded, value) and meta == {"name": "m.big"}
    header, start = encoding._parse_header(str(path), path.read_bytes()[:65536], size)
    assert header.checksum == checksum.preferred()
    assert header.digest == checksum.of(header.checksum, [path.read_bytes()[start:]], str(path))
    with open(path, "r+b") as f:
        f.seek(size - 1000)
        byte = f.read(1)[0]
        f.seek(size - 1000)
        f.write(bytes([byte ^ 0xFF]))
    with pytest.raises(CorruptResultError):
        load(str(path))


def test_header_read_without_a_json_parser_matches_the_full_one(tmp_path):
    from taskflow.encoding import _PREFIX
    from taskflow.resultheader import FIXED_HEAD as _FIXED_HEAD

    meta = {"name": "m.f", "host": "h\u00e9", "nested": {"a": [1, 2]}, "duration": 0.5}
    path = tmp_path / "r"
    with open(path, "wb") as f:
        encoding.Payload({"x": np.arange(5)}, meta).write(f.fileno())
    data = path.read_bytes()
    raw = data[_PREFIX.size:_PREFIX.size + _PREFIX.unpack_from(data)[1]]
    assert _FIXED_HEAD.match(raw), "the writer's header must take the fast path"
    header, _ = encoding._parse_header(str(path), data, len(data))
    full = json.loads(raw)
    algorithm, digits = full["checksum"].split(":")
    assert (header.checksum, header.digest, header.kind, header.segments, header.meta) == (
        algorithm, int(digits, 16), full["kind"], full["segments"], full["meta"])
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
    check = {key: header[key] for key in ("crc32", "checksum") if key in header}
    reordered = json.dumps({"meta": header["meta"], "segments": header["segments"], "kind": header["kind"],
                            **check}).encode()
    path.write_bytes(prefix.pack(encoding.MAGIC, len(reordered)) + reordered + data[end:])
    assert load(str(path)) == ("text", {"name": "m.f"})


# -- checksums: XXH3 where xxhash is installed, CRC-32 as before ---------------------------------

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "results")
GOLDEN_META = {"name": "golden.small", "host": "h", "version": None}
GOLDEN_VALUE = {"x": [1, 2, 3], "s": "text", "b": b"bytes"}
needs_xxhash = pytest.mark.skipif(checksum.preferred() != checksum.XXH3, reason="the xxhash package is not installed")


def golden_array():
    return (np.arange(1_500_000) % 251).astype(np.uint8).reshape(1500, 1000)


def golden_files(tmp_path):
    """Results written by taskflow before XXH3 (a small pickle, a 1.5 MB array), copied into tmp_path."""
    import gzip
    import shutil

    small, array = tmp_path / "crc32-pickle.tfr", tmp_path / "crc32-array.tfr"
    shutil.copy(os.path.join(GOLDEN, "crc32-pickle.tfr"), small)
    with gzip.open(os.path.join(GOLDEN, "crc32-array.tfr.gz"), "rb") as f:
        array.write_bytes(f.read())
    return small, array


def flip(path, where):
    data = bytearray(path.read_bytes())
    data[where] ^= 0x10
    path.write_bytes(bytes(data))


def test_results_written_with_crc32_before_still_load_and_are_checked(tmp_path):
    small, array = golden_files(tmp_path)
    assert load(str(small)) == (GOLDEN_VALUE, GOLDEN_META)
    loaded, meta = load(str(array))
    assert meta == {"name": "golden.array"} and np.array_equal(loaded, golden_array())
    assert np.array_equal(encoding.load_value(str(array), mmap=True), golden_array())
    for path in (small, array):
        encoding.verify(str(path))
        flip(path, -3)
        with pytest.raises(CorruptResultError, match="checksum mismatch"):
            load(str(path))
        with pytest.raises(CorruptResultError, match="checksum mismatch"):
            encoding.verify(str(path))


def test_crc32_results_are_written_byte_for_byte_as_before(tmp_path):
    small, array = golden_files(tmp_path)
    for path, value, meta in [(small, GOLDEN_VALUE, GOLDEN_META), (array, golden_array(), {"name": "golden.array"})]:
        out = tmp_path / "new"
        with open(out, "wb") as f:
            encoding.Payload(value, meta, checksum=checksum.CRC32).write(f.fileno())
        assert out.read_bytes() == path.read_bytes(), "older taskflow must read what the fallback writes"


def big_non_contiguous():
    return np.random.default_rng(4).random((3000, 500))[:, ::2]  # 6 MB of the 12 MB it views


@needs_xxhash
@pytest.mark.parametrize("make", [
    lambda: {"x": list(range(100))},
    lambda: np.random.default_rng(2).random(300_000),  # 2.4 MB: one write, read into place chunk by chunk
    lambda: np.random.default_rng(2).random(1_200_000),  # 9.6 MB: checksummed chunk by chunk as written
    big_non_contiguous,
    lambda: {"a": np.random.default_rng(2).random(700_000), "n": 1},  # pickled, its array out of band
], ids=["pickle", "array", "large-array", "non-contiguous", "pickle-with-large-array"])
def test_new_results_are_checked_with_xxh3_and_damage_is_found(tmp_path, make):
    value = make()
    path = tmp_path / "r"
    with open(path, "wb") as f:
        size = encoding.Payload(value, {"name": "m.f"}).write(f.fileno())
    assert size == os.path.getsize(path)
    assert path.read_bytes()[8:40].startswith(b'{"checksum":"xxh3_64:')
    loaded, meta = load(str(path))
    assert meta == {"name": "m.f"}
    if isinstance(value, np.ndarray):
        assert np.array_equal(loaded, value) and loaded.flags.writeable
    elif "a" in value:
        assert np.array_equal(loaded["a"], value["a"]) and loaded["n"] == 1
    else:
        assert loaded == value
    encoding.verify(str(path))
    for where in (size // 2, size - 1):
        flip(path, where)
        with pytest.raises(CorruptResultError, match="checksum mismatch"):
            load(str(path))
        with pytest.raises(CorruptResultError, match="checksum mismatch"):
            encoding.verify(str(path))
        flip(path, where)
    encoding.verify(str(path))
    os.truncate(path, size - 1)
    with pytest.raises(CorruptResultError, match="truncated"):
        load(str(path))


@needs_xxhash
def test_a_store_holding_both_checksums_reads_and_checks_each(tmp_path):
    from taskflow.stores.folder import FolderStore as Store

    store = Store(str(tmp_path / "s"))
    old, new = "ab" * 16, "cd" * 16
    store.save_payload(old, encoding.Payload(np.arange(300_000.0), {"name": "m.old"}, checksum=checksum.CRC32))
    store.save_payload(new, encoding.Payload(np.arange(300_000.0), {"name": "m.new"}))
    assert open(store.result_path(old), "rb").read(16).endswith(b'{"crc32"')
    assert open(store.result_path(new), "rb").read(19).endswith(b'{"checksum"')
    for h in (old, new):
        assert np.array_equal(store.load_value(h), np.arange(300_000.0))
    assert list(store.damaged([old, new])) == []
    for h in (old, new):
        flip(Path(store.result_path(h)), -8)
    assert sorted(h for h, _ in store.damaged([old, new])) == [old, new]


def with_header(path, **changes):
    """Rewrite a result's JSON header with `changes` (None removes a key), keeping its data."""
    data = path.read_bytes()
    prefix = encoding._PREFIX
    end = prefix.size + prefix.unpack_from(data)[1]
    header = json.loads(data[prefix.size:end])
    for key, value in changes.items():
        header.pop(key, None)
        if value is not None:
            header[key] = value
    raw = json.dumps(header).encode()
    path.write_bytes(prefix.pack(encoding.MAGIC, len(raw)) + raw + data[end:])


@pytest.mark.parametrize("value", ["text", np.arange(300_000.0)], ids=["pickle", "array"])
def test_a_checksum_this_taskflow_does_not_know_is_an_error_naming_the_result_not_damage(tmp_path, value):
    from taskflow.errors import StoreError

    path = tmp_path / "r"
    with open(path, "wb") as f:
        encoding.Payload(value, {"name": "m.f"}).write(f.fileno())
    with_header(path, crc32=None, checksum="blake9:00ff00ff")
    for read in (encoding.load_value, encoding.verify, lambda p: load(p, mmap=True)):
        with pytest.raises(StoreError) as caught:
            read(str(path))
        message = str(caught.value)
        assert not isinstance(caught.value, CorruptResultError), "a newer format is not damage"
        assert str(path) in message and "'blake9'" in message and "newer taskflow" in message
        assert "\n" not in message
    assert encoding.read_meta(str(path)) == {"name": "m.f"}, "its header still reads"


def test_check_verify_leaves_a_result_of_an_unknown_checksum_in_place(tmp_path):
    from conftest import run_cli, write_taskfile

    tf = write_taskfile(tmp_path, "from taskflow import TaskGenerator\n\n@TaskGenerator\ndef f():\n    return 1\n\n"
                                  "x = f()\n")
    run_cli("execute", tf, check=0)
    (path,) = (tmp_path / "taskfile.taskflow" / "results").glob("*/*")
    with_header(path, crc32=None, checksum="blake9:00ff00ff")
    proc = run_cli("check", tf, "--verify", check=2)
    (line,) = proc.stderr.strip().splitlines()
    assert str(path) in line and "newer taskflow" in line
    assert path.exists()
    for aside in ("damaged", "suspect"):
        folder = tmp_path / "taskfile.taskflow" / aside
        assert not folder.exists() or not os.listdir(folder)


WITHOUT_XXHASH = """
import json, sys
import numpy as np
from taskflow import checksum, encoding
from taskflow.errors import CorruptResultError, StoreError

new, old = sys.argv[1], sys.argv[2]
out = {"preferred": checksum.preferred()}
with open(old, "wb") as f:
    encoding.Payload(np.arange(1_000_000.0), {"name": "m.old"}).write(f.fileno())
out["old_head"] = open(old, "rb").read(20)[8:].decode()
out["old_equal"] = bool(np.array_equal(encoding.load_value(old), np.arange(1_000_000.0)))
out["new_mmap_equal"] = bool(np.array_equal(encoding.load_value(new, mmap=True), np.arange(300_000.0)))
for name, read in [("load", encoding.load_value), ("verify", encoding.verify)]:
    try:
        read(new)
        out[name] = "no error"
    except StoreError as e:
        out[name] = str(e)
data = bytearray(open(old, "rb").read())
data[-5] ^= 1
open(old + ".damaged", "wb").write(bytes(data))
try:
    encoding.load_value(old + ".damaged")
    out["damage"] = "not found"
except CorruptResultError as e:
    out["damage"] = e.reason
print(json.dumps(out))
"""


def block_xxhash(tmp_path) -> dict:
    """An environment whose Python cannot import xxhash, as where it is not installed."""
    blocked = tmp_path / "blocked"
    blocked.mkdir(exist_ok=True)
    (blocked / "xxhash.py").write_text("raise ImportError('xxhash is not installed here')\n")
    paths = [str(blocked)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@needs_xxhash
def test_without_xxhash_results_fall_back_to_crc32_and_xxh3_ones_say_what_they_need(tmp_path):
    import subprocess
    import sys

    new, old = tmp_path / "new", tmp_path / "old"
    with open(new, "wb") as f:
        encoding.Payload(np.arange(300_000.0), {"name": "m.new"}).write(f.fileno())
    proc = subprocess.run([sys.executable, "-c", WITHOUT_XXHASH, str(new), str(old)], capture_output=True,
                          text=True, env=block_xxhash(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["preferred"] == checksum.CRC32 and out["old_head"].startswith('{"crc32":')
    assert out["old_equal"] and out["new_mmap_equal"], "mmap checks nothing, so it needs no xxhash"
    for name in ("load", "verify"):
        assert str(new) in out[name] and "needs the xxhash package" in out[name] and "\n" not in out[name]
    assert out["damage"].startswith("checksum mismatch")
    assert load(str(old))[1] == {"name": "m.old"}, "read where xxhash is installed too"


@needs_xxhash
def test_workers_with_and_without_xxhash_share_one_store(tmp_path):
    import subprocess
    import sys

    from conftest import run_cli, write_taskfile

    source = ("import numpy as np\nfrom taskflow import TaskGenerator\n\n@TaskGenerator\ndef f(i):\n"
              "    return np.arange(200_000.0) + i\n\n@TaskGenerator\ndef total(xs):\n"
              "    return float(sum(x.sum() for x in xs))\n\nxs = [f(i) for i in range({n})]\nt = total(xs)\n")
    tf = write_taskfile(tmp_path, source.format(n=3))
    env = block_xxhash(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "taskflow", "execute", str(tf)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    tf.write_text(source.format(n=5))
    run_cli("execute", tf, check=0)  # reads the CRC-32 results as inputs, writes XXH3 ones
    heads = sorted(open(p, "rb").read(12)[8:] for p in (tmp_path / "taskfile.taskflow" / "results").glob("*/*"))
    assert heads.count(b'{"cr') == 4 and heads.count(b'{"ch') == 3
    run_cli("check", tf, "--verify", check=0)
    expected = sum(float((np.arange(200_000.0) + i).sum()) for i in range(5))
    code = f"import taskflow; ns = taskflow.init({str(tf)!r}); print(taskflow.value(ns.t))"
    assert float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd=tmp_path).stdout) == expected


def test_a_large_non_contiguous_array_is_copied_one_chunk_at_a_time(tmp_path, monkeypatch):
    copies = []
    real = np.ascontiguousarray

    def recording(a, *args, **kwargs):
        out = real(a, *args, **kwargs)
        if out is not a and not np.shares_memory(out, a):
            copies.append(out.nbytes)
        return out

    monkeypatch.setattr(np, "ascontiguousarray", recording)
    value = big_non_contiguous()
    loaded, _ = roundtrip(tmp_path, value)
    assert np.array_equal(loaded, value)
    assert copies and max(copies) <= encoding._CHUNK, f"copied {max(copies)} bytes of {value.nbytes} at once"


@pytest.mark.parametrize("value", [np.zeros((0, 5)), np.zeros((3, 0), dtype=np.int16), np.zeros((4, 6))[:0, ::2]])
def test_empty_arrays_of_any_shape_roundtrip(tmp_path, value):
    loaded, _ = roundtrip(tmp_path, value)
    assert loaded.shape == value.shape and loaded.dtype == value.dtype


@needs_xxhash
def test_a_worker_that_cannot_check_an_input_stops_without_failing_the_task(tmp_path):
    import subprocess
    import sys

    from conftest import run_cli, write_taskfile

    source = ("from taskflow import TaskGenerator\n\n@TaskGenerator\ndef f(i):\n    return [i] * 10\n\n"
              "@TaskGenerator\ndef g(x):\n    return sum(x)\n\nxs = [f(i) for i in range(2)]\n")
    tf = write_taskfile(tmp_path, source)
    run_cli("execute", tf, check=0)  # XXH3 results
    tf.write_text(source + "y = g(xs[1])\n")
    proc = subprocess.run([sys.executable, "-m", "taskflow", "execute", str(tf)], capture_output=True, text=True,
                          env=block_xxhash(tmp_path), timeout=120)
    assert proc.returncode == 2, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if "error" in line]
    assert "needs the xxhash package" in line and "results/" in line and "Traceback" not in proc.stderr
    store = tmp_path / "taskfile.taskflow"
    assert not os.listdir(store / "failed") and not os.listdir(store / "locks"), "no failure, claim given back"
    assert "finished taskfile.g" in run_cli("execute", tf, check=0).stderr


def _large_results():
    rng = np.random.default_rng(7)
    return {
        "array": rng.random(1_500_000),  # 12 MB: read straight into the array
        "pickle": {"a": rng.random(1_500_000), "b": [rng.random(10).astype(np.float32)], "n": 3},
    }


@pytest.mark.parametrize("algorithm", [checksum.XXH3, checksum.CRC32])
@pytest.mark.parametrize("kind", ["array", "pickle"])
def test_large_results_are_read_and_checked_in_one_pass(tmp_path, monkeypatch, kind, algorithm):
    """Every chunk of a large result is checked right after its read, and nothing checks it again."""
    if algorithm == checksum.XXH3 and not checksum._xxhash_module():
        pytest.skip("xxhash is not installed")
    value = _large_results()[kind]
    path = tmp_path / "r"
    with open(path, "wb") as f:
        size = encoding.Payload(value, {"name": "m.f"}, checksum=algorithm).write(f.fileno())
    added = []
    real_checker = checksum.checker

    def recording(algorithm, name, parallel=False):
        inner = real_checker(algorithm, name, parallel)

        class Recording:
            def add(self, buffer):
                added.append(memoryview(buffer).nbytes)
                inner.add(buffer)

            def result(self):
                return inner.result()
        return Recording()

    monkeypatch.setattr(encoding.checksums, "checker", recording)
    monkeypatch.setattr(encoding, "_check", lambda *a: pytest.fail("a second pass over the data"))
    loaded, meta = load(str(path))
    assert meta == {"name": "m.f"}
    header, start = encoding._parse_header(str(path), path.read_bytes()[:65536], size)
    assert sum(added) == size - start, "every byte is checked"
    assert max(added) <= 1 << 20, "in chunks that stay in cache"
    if kind == "array":
        assert np.array_equal(loaded, value) and loaded.flags.writeable
    else:
        assert np.array_equal(loaded["a"], value["a"]) and loaded["a"].flags.writeable
        assert np.array_equal(loaded["b"][0], value["b"][0]) and loaded["n"] == 3


@pytest.mark.parametrize("algorithm", [checksum.XXH3, checksum.CRC32])
@pytest.mark.parametrize("kind", ["array", "pickle"])
def test_damage_in_the_middle_of_a_large_result_and_truncation_are_refused(tmp_path, kind, algorithm):
    if algorithm == checksum.XXH3 and not checksum._xxhash_module():
        pytest.skip("xxhash is not installed")
    value = _large_results()[kind]
    path = tmp_path / "r"
    with open(path, "wb") as f:
        size = encoding.Payload(value, {}, checksum=algorithm).write(f.fileno())
    # One bit, in the middle of a chunk and in the middle of the file (inside the large array).
    for where in (size // 2 + 12345, size - 1, (3 << 20) + 1):
        flip(path, where)
        with pytest.raises(CorruptResultError, match="checksum mismatch"):
            load(str(path))
        with pytest.raises(CorruptResultError, match="checksum mismatch"):
            encoding.verify(str(path))
        flip(path, where)
    assert encoding.load_value(str(path)) is not None  # whole again
    for cut in (1, (1 << 20) + 7, size // 2):
        os.truncate(path, size - cut)
        with pytest.raises(CorruptResultError, match="truncated"):
            load(str(path))
        with pytest.raises(CorruptResultError):
            load(str(path), mmap=True)


def test_a_large_result_that_shrinks_while_read_is_refused(tmp_path, monkeypatch):
    """Its length was right when opened: the read running short is damage, not a shorter array."""
    from taskflow import bigread

    path = tmp_path / "r"
    for value in _large_results().values():
        with open(path, "wb") as f:
            size = encoding.Payload(value, {}).write(f.fileno())
        real = bigread.read_exactly

        def shrinking(f, into, name):
            os.truncate(path, size // 2)
            return real(f, into, name)

        monkeypatch.setattr(bigread, "read_exactly", shrinking)
        with pytest.raises(CorruptResultError, match="changed size"):
            load(str(path))
        monkeypatch.setattr(bigread, "read_exactly", real)
