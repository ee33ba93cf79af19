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
