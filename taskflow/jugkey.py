"""jug's keys for tasks declared through taskflow.jug, to find their results in a jugdata folder.

jug 2.x names a result by the SHA-1 hex digest of its task's name and
arguments. The digest is fed, for each (label, value) pair, the label
pickled with protocol 4 and then the value: a task or Tasklet as its own
digest; a plain list or tuple as its type's repr and then its (index, item)
pairs; a set as b"set" and its items' digests, sorted; a dict as b"dict" and
(key digest, value) pairs sorted by key digest; an object with
`__jug_hash__()` as what that returns; anything else pickled with protocol 4.

Computed here only where the bytes are fixed by those rules and by pickle's
protocol, never by a library's version or by Python's bytecode, so a key is
exactly jug's or it is refused (`NotComputable`) and the task computes
again. Supported arguments: None, bool, int, float, str, bytes, range; lists,
tuples, dicts and sets of them; tasks and task elements (`t[0]`, `t[z]`)
declared through jug's API, NoLoad, the results of `mapreduce.map` and their
slices; module-level functions outside taskflow; `timed_path`; and objects
whose `__jug_hash__()` (or a CustomHash function) is deterministic and, if it
hashes, does so with `jug.hash.hash_one`. Not supported: numpy arrays (their
key holds numpy's pickle of the dtype, which varies between numpy versions),
complex numbers, slices, lambdas in Tasklets (jug hashes their bytecode),
and `return_tuple` elements. A TaskGenerator argument is supported when its
module and function names differ (pickle would write a repeated name once).
"""
from __future__ import annotations

import hashlib
import pickle
import struct
import types
from typing import Any

from .jug import hash as jug_hash
from .jug import io as jug_io
from .jug import mapreduce as jug_mapreduce
from .jug import task as jug_task
from .jug import utils as jug_utils
from .task import Task, TaskElement

PROTOCOL = 4  # jug pins it for its keys

# Functions of taskflow.jug that stand for jug's own, by the name jug hashes them under.
# identity's tasks are hashed under the bare name "identity": jug renames them after declaring.
_JUG_NAMES = {
    jug_utils._identity: "identity",
    jug_utils.glob_sort: "jug.utils.glob_sort",
    jug_utils.jug_execute.f: "jug.utils.jug_execute",
    jug_io._do_write_task_out.f: "jug.io._do_write_task_out",
    jug_mapreduce._map_reduce_values: "jug.mapreduce._jug_map_reduce",
    jug_mapreduce._reduce_values: "jug.mapreduce._jug_reduce",
    jug_mapreduce._map_values: "jug.mapreduce._jug_map",
    jug_mapreduce._curry_map_values: "jug.mapreduce._jug_map_curry",
}

_PICKLED = (type(None), bool, int, float, str, bytes, range)


class NotComputable(Exception):
    """jug's key of this task cannot be computed exactly; says why."""


def task_key(task: Any, memo: dict | None = None) -> str:
    """jug's key (40 hex digits) of `task`, or NotComputable."""
    memo = {} if memo is None else memo
    try:
        return _Keys(memo).task(task).decode("ascii")
    except RecursionError:
        # Keys of dependencies first (declaration order, as import-jug goes) keep the recursion shallow.
        raise NotComputable("its dependencies are too deeply nested to follow before theirs are known") from None


class _Keys:
    def __init__(self, memo: dict):
        self.memo = memo  # taskflow hash -> jug key (bytes), shared across tasks of one import

    def task(self, t: Any) -> bytes:
        if not isinstance(t, jug_task.Task):
            raise NotComputable(f"{t.name} is not declared through jug's API")
        known = self.memo.get(t.hash)
        if known is not None:
            if isinstance(known, NotComputable):
                raise known
            return known
        try:
            key = self._task(t)
        except NotComputable as e:
            self.memo[t.hash] = e
            raise
        self.memo[t.hash] = key
        return key

    def _task(self, t: jug_task.Task) -> bytes:
        name = _JUG_NAMES.get(t.f)
        if name is None:
            module = getattr(t.f, "__module__", None) or ""
            fname = getattr(t.f, "__name__", None)
            if module.split(".")[0] == "taskflow" or fname is None:
                raise NotComputable(f"{t.name} has no counterpart in jug")
            name = f"{module}.{fname}"
        m = hashlib.sha1()
        self.update(m, [("name", name.encode("utf-8")), ("args", t.args), ("kwargs", t.kwargs)])
        return m.hexdigest().encode("ascii")

    # -- jug's hash_update, value by value ----------------------------------------

    def update(self, m: Any, pairs: Any) -> None:
        for label, item in pairs:
            m.update(_pickle(label))
            self.one(m, item)

    def digest(self, obj: Any) -> bytes:
        """jug's hash_one: the digest of ("hash1", obj)."""
        m = hashlib.sha1()
        self.update(m, [("hash1", obj)])
        return m.hexdigest().encode("ascii")

    def one(self, m: Any, e: Any) -> None:
        kind = type(e)
        if kind in _PICKLED:
            m.update(_pickle(e))
        elif kind is _GeneratorPickle:
            m.update(e.pickled())
        elif kind is list or kind is tuple:
            m.update(repr(kind).encode("utf-8"))
            self.update(m, enumerate(e))
        elif kind is set or kind is frozenset:
            m.update(b"set" if kind is set else b"frozenset")
            self.update(m, enumerate(sorted(self.digest(x) for x in e)))
        elif kind is dict:
            m.update(b"dict")
            items = sorted(((self.digest(k), v) for k, v in e.items()), key=lambda kv: kv[0])
            self.update(m, items)
        else:
            m.update(self.special(e))

    def special(self, e: Any) -> bytes:
        """The bytes jug feeds for a task, Tasklet, jug object or function argument."""
        if isinstance(e, Task):
            return self.task(e)
        if isinstance(e, TaskElement):
            digest = self.task(e.task)
            for key in e.path:
                digest = self.tasklet(digest, self.digest(("jug.task._getitem", key)))
            return digest
        if isinstance(e, jug_io.NoLoad):
            return self.tasklet(self.tasklet_base(e.base), _pickle("NoLoad"))
        if isinstance(e, jug_task.Tasklet):
            return self.tasklet(self.tasklet_base(e.base), self.function(e.f))
        if isinstance(e, jug_mapreduce.MapResult):
            return self.digest({"type": "map-access", "len": e.len, "blocks": e.blocks,
                                "block_size": e.block_size})
        if isinstance(e, jug_mapreduce._MapSlice):
            return self.digest({"type": "map-access-slice", "base": e.base, "start": e.start,
                                "stop": e.stop, "stride": e.stride})
        if isinstance(e, jug_utils.CustomHash):
            return self.with_jug_scheme(e.hash_function, e.obj)
        custom = getattr(type(e), "__jug_hash__", None)
        if custom is not None:
            return self.with_jug_scheme(custom, e)
        if isinstance(e, jug_mapreduce.Unwrapped):
            # jug stamps the function with the digest of its generator, pickled.
            return self.digest(_GeneratorPickle(e.generator))
        if isinstance(e, jug_task.TaskGenerator):
            return _GeneratorPickle(e).pickled()
        if isinstance(e, (types.FunctionType, types.BuiltinFunctionType, type)):
            return self.function(e)
        raise NotComputable(f"jug's key of a {type(e).__module__}.{type(e).__qualname__} argument "
                            "depends on more than pickle's protocol")

    def tasklet_base(self, e: Any) -> bytes:
        if isinstance(e, (Task, TaskElement, jug_task.Tasklet)):
            return self.special(e)
        raise NotComputable(f"jug's key of a Tasklet of a {type(e).__qualname__} is not computed")

    def tasklet(self, base: bytes, f: bytes) -> bytes:
        m = hashlib.sha1()
        m.update(b"Tasklet")
        m.update(_pickle("base"))
        m.update(base)
        m.update(_pickle("f"))
        m.update(f)
        return m.hexdigest().encode("ascii")

    def function(self, f: Any) -> bytes:
        if isinstance(f, jug_task._GetItem):
            return self.digest(("jug.task._getitem", f.key))
        if isinstance(f, (types.FunctionType, types.BuiltinFunctionType, type)):
            module = getattr(f, "__module__", None) or ""
            if f.__name__ == "<lambda>" or "<locals>" in f.__qualname__:
                raise NotComputable("jug's key of a lambda holds its bytecode, which depends on the Python version")
            if module.split(".")[0] in ("taskflow", "jug"):
                raise NotComputable(f"{module}.{f.__qualname__} has no counterpart in jug")
            try:
                return _pickle(f)
            except (pickle.PicklingError, AttributeError, TypeError) as e:
                raise NotComputable(f"cannot name {f!r} as pickle would: {e}") from None
        raise NotComputable(f"jug's key of a {type(f).__qualname__} function depends on more than "
                            "pickle's protocol")

    def with_jug_scheme(self, f: Any, obj: Any) -> bytes:
        token = jug_hash.jug_scheme.set(self.digest)
        try:
            digest = f(obj)
        except NotComputable:
            raise
        except Exception as e:
            raise NotComputable(f"its __jug_hash__ raised {type(e).__name__}: {e}") from None
        finally:
            jug_hash.jug_scheme.reset(token)
        if isinstance(digest, str):
            digest = digest.encode("utf-8")
        if not isinstance(digest, bytes):
            raise NotComputable("its __jug_hash__ did not return bytes")
        return digest


def _pickle(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=PROTOCOL)


class _GeneratorPickle:
    """What pickle (protocol 4) writes for jug's TaskGenerator of a function: the class by name,
    then the state (module, function name)."""

    def __init__(self, generator: Any):
        self.module = getattr(generator.f, "__module__", None)
        self.name = getattr(generator.f, "__name__", None)

    def pickled(self) -> bytes:
        module, name = self.module, self.name
        if module is None or name is None or len({"jug.task", "TaskGenerator", module, name}) < 4:
            # Equal strings may be memoized once by pickle: not a layout computed here.
            raise NotComputable("a TaskGenerator whose module and function names repeat")
        body = _short_unicode("jug.task") + _short_unicode("TaskGenerator") + b"\x93\x94)\x81\x94"
        body += _short_unicode(module) + _short_unicode(name) + b"\x86\x94b"
        return b"\x80\x04\x95" + struct.pack("<Q", len(body) + 1) + body + b"."


def _short_unicode(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    if len(data) >= 256:
        raise NotComputable("a name longer than 255 bytes")
    return b"\x8c" + bytes([len(data)]) + data + b"\x94"
