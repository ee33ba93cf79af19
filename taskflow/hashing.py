"""Stable task identities.

A task's hash must be the same in every process, on every host, under every
PYTHONHASHSEED and every Python version, because workers on different nodes
find each other's results by it. So the bytes that get hashed are defined
here, value by value (a type tag plus canonical bytes), rather than borrowed
from pickle, whose output changes with protocol and version. Changing any of
this changes every hash: `tests/test_hashing.py` pins known vectors.
"""
from __future__ import annotations

import enum
import sys
import types
from collections.abc import Callable
from typing import Any

from .errors import UnhashableArgumentError

try:  # hashlib's own blake2b, without hashlib loading OpenSSL for the others: 2 ms of every start
    from _blake2 import blake2b
except ImportError:  # an interpreter without CPython's module
    from hashlib import blake2b

ENCODING_VERSION = b"taskflow-hash-1\0"
DIGEST_SIZE = 16  # 128 bits: collisions are not a practical concern, names stay short

# The types the README lists (Task hashes), in the order it lists them.
HINT = ("supported: None, bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, set, "
        "frozenset, slices, paths, enums, numpy arrays and scalars, tasks and task elements, "
        "module-level functions and classes; give other types a __taskflow_hash__() method returning bytes or str")


# What tasks are to a hash, as bases of task.py's classes: this module names them without
# importing task.py, which builds on this one.
class TaskArgument:
    """Base of `task.Task`: an argument that enters a hash as its own hash and becomes a dependency."""

    __slots__ = ()
    hash: str


class ElementArgument:
    """Base of `task.TaskElement`: enters as its own hash; its task and index tasks become dependencies."""

    __slots__ = ()
    hash: str
    task: TaskArgument
    deps: tuple


class GeneratorArgument:
    """Base of `task.TaskGenerator`: enters by its function's name, as that function would."""

    name: str


class _Unhashable(Exception):
    """Raised deep inside the encoder; containers prepend their index on the way out."""

    def __init__(self, obj: Any, reason: str = ""):
        self.obj = obj
        self.reason = reason
        self.path = ""
        self.key: Any = None


def _frame(tag: bytes, payload: bytes, out: bytearray) -> None:
    out += tag
    out += b"%d:" % len(payload)
    out += payload


def _enc_none(obj, out, deps):
    out += b"N"


def _enc_bool(obj, out, deps):
    out += b"T" if obj else b"F"


def _enc_int(obj, out, deps):
    out += b"i%d;" % obj


def _enc_float(obj, out, deps):
    # float.hex is exact and canonical (one spelling for nan, inf, -0.0).
    out += b"f" + obj.hex().encode() + b";"


def _enc_complex(obj, out, deps):
    out += b"c" + obj.real.hex().encode() + b"," + obj.imag.hex().encode() + b";"


def _enc_str(obj, out, deps):
    _frame(b"s", obj.encode("utf-8", "surrogatepass"), out)


def _enc_bytes(obj, out, deps):
    _frame(b"b", bytes(obj), out)


def _enc_bytearray(obj, out, deps):
    _frame(b"y", bytes(obj), out)


def _enc_sequence(tag: bytes):
    def encode(obj, out, deps):
        out += tag + b"%d:" % len(obj)
        for i, item in enumerate(obj):
            try:
                _encode(item, out, deps)
            except _Unhashable as e:
                e.path = f"[{i}]" + e.path
                raise
    return encode


def _sorted_encodings(items, deps, label) -> list[bytes]:
    encoded = []
    for item in items:
        buf = bytearray()
        try:
            _encode(item, buf, deps)
        except _Unhashable as e:
            e.path = f"{{{label(item)}}}" + e.path
            raise
        encoded.append(bytes(buf))
    encoded.sort()
    return encoded


def _dict_entries(obj: dict, deps: dict) -> list[bytes]:
    """Encoded (key, value) entries, sorted so that insertion order does not matter."""
    entries = []
    for key, val in obj.items():
        buf = bytearray()
        try:
            _encode(key, buf, deps)
            _encode(val, buf, deps)
        except _Unhashable as e:
            e.key = key
            e.path = f"[{key!r}]" + e.path
            raise
        entries.append(bytes(buf))
    entries.sort()
    return entries


def _enc_dict(obj, out, deps):
    entries = _dict_entries(obj, deps)
    out += b"d%d:" % len(entries)
    for entry in entries:
        _frame(b"", entry, out)


def _enc_set_like(tag: bytes):
    def encode(obj, out, deps):
        encoded = _sorted_encodings(obj, deps, repr)
        out += tag + b"%d:" % len(encoded)
        for item in encoded:
            _frame(b"", item, out)
    return encode


def _enc_slice(obj, out, deps):
    out += b"r"
    for part in (obj.start, obj.stop, obj.step):
        _encode(part, out, deps)


_ENCODERS: dict[type, Callable] = {
    type(None): _enc_none,
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    complex: _enc_complex,
    str: _enc_str,
    bytes: _enc_bytes,
    bytearray: _enc_bytearray,
    list: _enc_sequence(b"l"),
    tuple: _enc_sequence(b"t"),
    dict: _enc_dict,
    set: _enc_set_like(b"e"),
    frozenset: _enc_set_like(b"z"),
    slice: _enc_slice,
}


def qualified_name(obj: Any) -> str:
    """`module.qualname` of a function or class, refusing what has no stable name."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if module is None or qualname is None:
        raise _Unhashable(obj, "it has no module-level name")
    if qualname == "<lambda>" or "<lambda>" in qualname:
        raise _Unhashable(obj, "lambdas have no stable name; define the function with def at module level")
    if "<locals>" in qualname:
        raise _Unhashable(obj, "functions defined inside other functions have no stable name; "
                               "define it at module level")
    return f"{module}.{qualname}"


def _encode_numpy(obj, out, deps) -> bool:
    np = sys.modules.get("numpy")
    if np is None:
        return False
    if isinstance(obj, np.ndarray):
        if type(obj) is not np.ndarray and type(obj) is not np.memmap:
            _encode_array_subclass(np, obj, out, deps)
            return True
        arr = obj
        if arr.dtype.hasobject:
            out += b"O" + str(arr.shape).encode() + b";"
            before = len(deps)
            _enc_sequence(b"l")(arr.ravel().tolist(), out, deps)
            if len(deps) != before:
                raise _Unhashable(obj, "tasks inside a numpy object array are not replaced by their "
                                       "results; pass them in a list instead")
            return True
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        dtype = str(arr.dtype.descr) if arr.dtype.names else arr.dtype.str
        data = memoryview(np.ascontiguousarray(arr)).cast("B")
        out += b"A" + dtype.encode() + b";" + str(arr.shape).encode() + b";"
        out += blake2b(data, digest_size=32).digest()
        return True
    if isinstance(obj, np.generic):
        if isinstance(obj, np.object_):
            return False
        scalar = obj
        if scalar.dtype.byteorder == ">":
            scalar = scalar.astype(scalar.dtype.newbyteorder("<"))
        _frame(b"a" + scalar.dtype.str.encode() + b";", scalar.tobytes(), out)
        return True
    return False


def _encode_array_subclass(np, obj, out, deps) -> None:
    # A subclass may carry more than its data (a mask, units): tagged with its
    # class, so it never shares a hash with the plain array of the same data.
    out += b"S" + qualified_name(type(obj)).encode() + b";"
    if isinstance(obj, np.ma.MaskedArray):
        _encode(np.ma.getdata(obj), out, deps)
        _encode(np.ma.getmaskarray(obj), out, deps)
        _encode(np.asarray(obj.fill_value), out, deps)
        return
    _encode(obj.view(np.ndarray), out, deps)


def _encode_other(obj, out, deps) -> None:
    if isinstance(obj, TaskArgument):
        deps[obj.hash] = obj
        out += b"K" + obj.hash.encode()
        return
    if isinstance(obj, ElementArgument):
        deps[obj.task.hash] = obj.task
        for d in obj.deps:  # tasks in its index: `r[z]`, `r[a:b]`
            deps[d.hash] = d
        out += b"X" + obj.hash.encode()
        return
    custom = getattr(type(obj), "__taskflow_hash__", None)
    if custom is not None:
        digest = custom(obj)
        if isinstance(digest, str):
            digest = digest.encode("utf-8")
        if not isinstance(digest, bytes):
            raise _Unhashable(obj, "__taskflow_hash__() must return bytes or str")
        out += b"H" + qualified_name(type(obj)).encode() + b";"
        _frame(b"", digest, out)
        return
    if _encode_numpy(obj, out, deps):
        return
    if isinstance(obj, GeneratorArgument):
        _frame(b"g", obj.name.encode(), out)
        return
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, type)):
        _frame(b"g", qualified_name(obj).encode(), out)
        return
    pathlib = sys.modules.get("pathlib")  # not imported on every start: a path argument has imported it
    if pathlib is not None and isinstance(obj, pathlib.PurePath):
        _frame(b"p", str(obj).encode("utf-8", "surrogatepass"), out)
        return
    if isinstance(obj, enum.Enum):
        out += b"E" + qualified_name(type(obj)).encode() + b";"
        _encode(obj.value, out, deps)
        return
    # Subclasses of builtins (namedtuple, IntEnum handled above, str subclasses):
    # hash as the base value, tagged with the class so they differ from it.
    for base, encoder in _ENCODERS.items():
        if base is not type(None) and isinstance(obj, base):
            out += b"S" + qualified_name(type(obj)).encode() + b";"
            encoder(obj, out, deps)
            return
    raise _Unhashable(obj)


def _encode(obj: Any, out: bytearray, deps: dict) -> None:
    encoder = _ENCODERS.get(type(obj))
    if encoder is not None:
        encoder(obj, out, deps)
    else:
        _encode_other(obj, out, deps)


_blake2b = blake2b

# The encoded start of every hash of a name: taskfiles declare thousands of tasks per name.
_NAME_PREFIXES: dict[str, bytes] = {}


def _name_prefix(name: str) -> bytes:
    out = bytearray(ENCODING_VERSION)
    _frame(b"n", name.encode(), out)
    _NAME_PREFIXES[name] = prefix = bytes(out)
    return prefix


def task_hash(name: str, args: tuple, kwargs: dict) -> tuple[str, dict]:
    """Hash of a task called `name` with these arguments, and its dependencies.

    Returns (hex digest, {dependency hash: dependency Task}). Raises
    UnhashableArgumentError naming the task and the argument.
    """
    prefix = _NAME_PREFIXES.get(name) or _name_prefix(name)
    if not kwargs and len(args) == 1 and type(args[0]) is int:
        # f(i) for i in range(n), the commonest declaration of all: the loop's bytes, no buffer.
        return _blake2b(prefix + b"i%d;" % args[0], digest_size=DIGEST_SIZE).hexdigest(), {}
    out = bytearray(prefix)
    deps: dict = {}
    for i, arg in enumerate(args):
        if type(arg) is int:   # the commonest argument, inline (a taskfile declares millions): _enc_int's bytes
            out += b"i%d;" % arg
            continue
        try:
            _encode(arg, out, deps)
        except _Unhashable as e:
            raise _describe(e, name, f"argument {i + 1}") from None
    if kwargs:
        try:
            _enc_dict(kwargs, out, deps)
        except _Unhashable as e:
            inner = e.path[len(f"[{e.key!r}]"):]
            raise _describe(e, name, f"keyword argument {e.key}", inner) from None
    return _blake2b(out, digest_size=DIGEST_SIZE).hexdigest(), deps


def _describe(e: _Unhashable, task: str, where: str, path: str | None = None) -> UnhashableArgumentError:
    argument = where + (e.path if path is None else path)
    kind = type(e.obj).__module__ + "." + type(e.obj).__qualname__
    reason = e.reason or f"cannot hash a value of type {kind}; {HINT}"
    return UnhashableArgumentError(f"task {task}: {argument}: {reason}", task=task, argument=argument)


def value_hash(obj: Any, deps: dict | None = None) -> str:
    """Hash of a plain value with the same encoding (used for task elements).

    Tasks inside `obj` contribute their hash, and are added to `deps` when given.
    """
    out = bytearray(ENCODING_VERSION)
    try:
        _encode(obj, out, {} if deps is None else deps)
    except _Unhashable as e:
        kind = type(e.obj).__module__ + "." + type(e.obj).__qualname__
        raise UnhashableArgumentError(e.reason or f"cannot hash a value of type {kind}; {HINT}") from None
    return blake2b(out, digest_size=DIGEST_SIZE).hexdigest()


def function_name(f: Callable) -> str:
    """The task name of a function: `module.qualname`, refusing lambdas and locals."""
    try:
        return qualified_name(f)
    except _Unhashable as e:
        from .errors import TaskDeclarationError
        raise TaskDeclarationError(f"cannot make a task of {f!r}: {e.reason}") from None
