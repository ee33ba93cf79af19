"""How a value becomes the segments of a stored result, and back (the format is in encoding.py).

A numpy array (non-object dtype) becomes a .npy header and its raw memory; anything else a
pickle (protocol 5, cloudpickle where plain pickle cannot) with its large buffers out of band.
"""
from __future__ import annotations

import io
import pickle
import sys
from collections.abc import Iterator
from typing import Any

# From this size on, data is checksummed chunk by chunk while it is written.
STREAM = 4 << 20


def is_plain_array(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return (np is not None and type(value) in (np.ndarray, np.memmap)
            and not value.dtype.hasobject)


def npy_segments(arr) -> tuple[str, list]:
    import numpy as np

    header = np.lib.format.header_data_from_array_1_0(arr)
    buf = io.BytesIO()
    np.lib.format.write_array_header_2_0(buf, header)
    data = arr.T if header["fortran_order"] else arr
    # A contiguous array is written from its own memory; any other large one is copied chunk by
    # chunk as it is written (see c_order_chunks), never into a whole new array.
    if not data.flags.c_contiguous and data.nbytes < STREAM:
        data = np.ascontiguousarray(data)
    return "npy", [buf.getvalue(), bytes_of(data) if data.flags.c_contiguous else data]


def bytes_of(arr) -> memoryview:
    """The memory of a C-contiguous array as bytes (also with a zero in its shape, which cast refuses)."""
    import numpy as np

    return arr.reshape(-1).view(np.uint8).data


def c_order_chunks(arr, size: int) -> Iterator[memoryview]:
    """The bytes of a non-contiguous array in C order, as contiguous pieces of about `size` bytes."""
    import numpy as np

    if arr.ndim == 0 or arr.flags.c_contiguous:
        whole = bytes_of(np.ascontiguousarray(arr))
        for start in range(0, whole.nbytes, size):
            yield whole[start:start + size]
        return
    row = arr[0].nbytes if len(arr) else 0
    if row > size:
        for i in range(len(arr)):
            yield from c_order_chunks(arr[i], size)
        return
    step = max(1, size // max(row, 1))
    for start in range(0, len(arr), step):
        yield bytes_of(np.ascontiguousarray(arr[start:start + step]))


def pickle_segments(value: Any) -> tuple[str, list]:
    buffers: list = []
    try:
        main = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        kind = "pickle"
    except (pickle.PicklingError, TypeError, AttributeError):
        import cloudpickle

        buffers = []
        main = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        kind = "cloudpickle"
    # pickle hands out of band only buffers that are contiguous, so raw() works.
    return kind, [main] + [pb.raw() for pb in buffers]


def decode_segments(kind: str, segments: list) -> Any:
    if kind == "npy":
        import numpy as np

        stream = io.BytesIO(segments[0])
        np.lib.format.read_magic(stream)
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        if dtype.hasobject:  # what an array of objects holds is pickled: never here (trust.py)
            raise ValueError("an array of objects where only plain data may be")
        arr = np.frombuffer(segments[1], dtype=dtype)
        return arr.reshape(shape, order="F" if fortran else "C")
    if kind in ("pickle", "cloudpickle"):
        if kind == "cloudpickle":
            import cloudpickle  # noqa: F401  (registers what its pickles need)
        return pickle.loads(segments[0], buffers=segments[1:])
    raise ValueError(f"unknown result kind {kind!r}")
