"""Key views: what identifies jug's objects in a task's hash (see jug/task.py's docstring).

A key view is an argument's structure with each jug object (a Tasklet, a `__jug_hash__`
object, a lambda or partial given to a Tasklet, a range chunk of jug's map) replaced by a
tagged tuple of what identifies it, so taskflow's hashing sees only values it knows.
"""
from __future__ import annotations

import functools
import inspect
import textwrap
import types
from typing import Any

from ..fingerprint import fingerprint


class _Tag:
    """Marks a key view's tuple as standing for a jug object, so no plain tuple can share its hash."""

    __slots__ = ("kind",)

    def __init__(self, kind: str):
        self.kind = kind

    def __taskflow_hash__(self) -> str:
        return self.kind

    def __repr__(self) -> str:
        return f"<{self.kind}>"


TASKLET, JUG_HASH, LAMBDA, PARTIAL, MAP, RANGE = (
    _Tag(k) for k in ("Tasklet", "__jug_hash__", "lambda", "partial", "map", "range"))


class JugHash(str):
    """A task's hash: taskflow's hex string, which jugfiles may also call (`t.hash()` gives bytes, as in jug)."""

    __slots__ = ()

    def __call__(self) -> bytes:
        return self.encode("ascii")


def key_view(obj: Any) -> Any:
    """`obj` with each jug object replaced by what identifies it (see the module's docstring)."""
    kind = type(obj)
    if kind in _PLAIN:
        return obj
    if kind is list or kind is tuple:
        items = [key_view(x) for x in obj]
        return obj if all(a is b for a, b in zip(items, obj, strict=True)) else kind(items)
    if kind is dict:
        changed = False
        out = {}
        for k, v in obj.items():
            kv, vv = key_view(k), key_view(v)
            changed = changed or kv is not k or vv is not v
            out[kv] = vv
        return out if changed else obj
    if kind is range:  # jug's map and mapreduce pass chunks of a range as ranges
        return (RANGE, obj.start, obj.stop, obj.step)
    view = getattr(obj, "_key_view", None)
    if view is not None and not isinstance(obj, type):
        return view()
    custom = getattr(type(obj), "__jug_hash__", None)
    if custom is not None and getattr(type(obj), "__taskflow_hash__", None) is None:
        digest = custom(obj)
        if isinstance(digest, str):
            digest = digest.encode("utf-8")
        return (JUG_HASH, f"{type(obj).__module__}.{type(obj).__qualname__}", digest)
    return obj


_PLAIN = {type(None), bool, int, float, complex, str, bytes}


def function_view(f: Any) -> Any:
    """What identifies a Tasklet's function: a module-level function by name, a lambda by its code."""
    view = getattr(f, "_key_view", None)
    if view is not None and not isinstance(f, type):
        return view()
    if isinstance(f, functools.partial):
        return (PARTIAL, function_view(f.func), key_view(f.args), key_view(f.keywords))
    if isinstance(f, types.FunctionType) and (f.__name__ == "<lambda>" or "<locals>" in f.__qualname__):
        # Source tokens (stable across Python versions) plus what it captured.
        code = f.__code__
        cells = []
        for cell in f.__closure__ or ():
            try:
                cells.append(key_view(cell.cell_contents))
            except ValueError:  # an empty cell
                cells.append(None)
        consts = [c for c in code.co_consts if type(c) in _PLAIN]
        place = _lambda_place(f)
        return (LAMBDA, f.__module__, fingerprint(f), code.co_code if place is None else place, code.co_names,
                consts, cells, key_view(list(f.__defaults__ or ())))
    return f


def _lambda_place(f: types.FunctionType) -> int | None:
    """Which lambda of its source lines `f` is (0 for the first), telling apart two on one line.

    Found by compiling those lines again and comparing code objects, so the
    answer depends on the source only, not on the Python version. None when
    the lines cannot be compiled alone (then the bytecode identifies it).
    """
    try:
        lines, _ = inspect.getsourcelines(f)
        compiled = compile(textwrap.dedent("".join(lines)), "<lambda>", "exec")
    except (OSError, TypeError, SyntaxError, ValueError):
        return None
    mine = _code_key(f.__code__)
    place = 0
    stack = [compiled]
    while stack:
        code = stack.pop()
        for const in reversed(code.co_consts):  # popped in source order
            if isinstance(const, types.CodeType):
                stack.append(const)
        if code.co_name == "<lambda>":
            if _code_key(code) == mine:
                return place
            place += 1
    return None


def _code_key(code: types.CodeType) -> tuple:
    # What the code does, leaving out where it is (lines and columns differ in the recompiled copy).
    consts = tuple(_code_key(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.co_code, code.co_names, consts
