"""CRC-32 computed in pieces on several threads equals zlib's over the whole."""
from __future__ import annotations

import os
import random
import zlib

import pytest

from taskflow import checksum


def test_combine_matches_zlib_over_the_concatenation():
    rnd = random.Random(7)
    for _ in range(300):
        a = rnd.randbytes(rnd.randrange(0, 2000))
        b = rnd.randbytes(rnd.choice([0, 1, 2, 3, rnd.randrange(0, 5000)]))
        assert checksum.combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_parallel_crc_equals_the_sequential_one(workers):
    data = os.urandom(3 * checksum.PIECE + 12345)
    cut = [data[:5], data[5:checksum.PIECE + 1], b"", data[checksum.PIECE + 1:]]
    assert checksum.crc32(cut, workers=workers) == zlib.crc32(data)
    assert checksum.crc32([], workers=workers) == 0


def test_pieces_handed_over_one_by_one_as_a_reader_does():
    data = bytearray(os.urandom(2 * checksum.PIECE + 999))
    crc = checksum.Parallel(workers=2)
    for start in range(0, len(data), 1 << 20):
        crc.add(memoryview(data)[start:start + (1 << 20)])
    before = crc.result()
    assert before == zlib.crc32(data)
    data[len(data) // 2] ^= 1
    after = checksum.crc32([data], workers=2)
    assert after == zlib.crc32(data) and after != before


@pytest.mark.skipif(checksum.preferred() != checksum.XXH3, reason="the xxhash package is not installed")
def test_xxh3_handed_over_in_pieces_equals_one_pass():
    import xxhash

    data = os.urandom(3 * (1 << 20) + 777)
    check = checksum.checker(checksum.XXH3, "r")
    for start in range(0, len(data), 100_000):
        check.add(memoryview(data)[start:start + 100_000])
    assert check.result() == xxhash.xxh3_64_intdigest(data)
    assert checksum.of(checksum.XXH3, [data[:5], b"", data[5:]], "r") == xxhash.xxh3_64_intdigest(data)


@pytest.mark.parametrize("parallel", [False, True])
def test_crc32_checkers_equal_zlib(parallel):
    data = os.urandom(2 * checksum.PIECE + 12345)
    assert checksum.of(checksum.CRC32, [data[:99], data[99:]], "r", parallel=parallel) == zlib.crc32(data)


def test_a_checksum_that_cannot_be_computed_here_is_a_store_error_naming_the_result(monkeypatch):
    from taskflow.errors import CorruptResultError, ExitCode, StoreError

    with pytest.raises(StoreError, match=r"result /s/r is checked with 'sha9', .* newer taskflow") as caught:
        checksum.checker("sha9", "/s/r")
    assert not isinstance(caught.value, CorruptResultError) and caught.value.exit_code == ExitCode.USAGE
    monkeypatch.setattr(checksum, "_xxhash", False)  # as where xxhash cannot be imported
    assert checksum.preferred() == checksum.CRC32
    with pytest.raises(StoreError, match=r"result /s/r is checked with xxh3_64, which needs the xxhash package"):
        checksum.checker(checksum.XXH3, "/s/r")
