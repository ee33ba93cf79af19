"""Task identities: pinned vectors, independence from process and hash seed, type distinctions."""
from __future__ import annotations

import enum
import hashlib
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pytest

from taskflow import Task, TaskGenerator
from taskflow.errors import TaskDeclarationError, UnhashableArgumentError
from taskflow.hashing import ENCODING_VERSION, task_hash

# Changing the encoding changes every stored result's name: these must never move.
VECTORS = {
    "none": ((None,), "6fbcdd954331927b0675c4995628da0a"),
    "bool": ((True, False), "e542d08800114f6002a9e544c1fdc271"),
    "int": ((1,), "b872c3988f887bb32b74c10c932de725"),
    "bigint": ((2**100, -5), "4f2c79530a3e906ee9d7f48831527e3c"),
    "float": ((1.0,), "6c65a2ba88da7a7aa64501f586d9f03a"),
    "nan": ((float("nan"),), "0a6bd83e3ee110943933a7b0cb5eb481"),
    "negzero": ((-0.0,), "f2825f6d9efb54a30e2eeabe6cc5004d"),
    "complex": ((1 + 2j,), "871b833fb230e302588e6de406670d2f"),
    "str": (("héllo",), "57c65d2a5babebf48dedd5ceaaa5bf9d"),
    "bytes": ((b"\x00\xff",), "db5d6af35482987ec47d0c9804dc10c3"),
    "list": (([1, 2],), "d45baf71acd3e535db5fd6235bab3e88"),
    "tuple": (((1, 2),), "29ba002f8c199f85351475f81993bd08"),
    "dict": (({"b": 1, "a": [1.5, None]},), "58610dbdd3e1a49ff4fac501e696597b"),
    "set": (({3, 1, 2},), "41ea1dc3667f70dd43e730876d5da64b"),
    "frozenset": ((frozenset({"x", "y"}),), "2003a26939cf6d54a27451b1f169b4b4"),
    "ndarray": ((np.arange(6, dtype=np.float64).reshape(2, 3),), "8693ba7c51eb3740f3089b56736565a4"),
    "npscalar": ((np.int32(7),), "f2b06c38528c00073317aa41c8ade693"),
}


@pytest.mark.parametrize("case", sorted(VECTORS))
def test_known_vectors(case):
    args, expected = VECTORS[case]
    assert task_hash("mod.f", args, {})[0] == expected


def test_keyword_vector():
    assert task_hash("mod.f", (1,), {"k": "v"})[0] == "1f653150a302529a6d22b2e3cea98374"


def _hashes_in_subprocess(seed: str) -> str:
    code = (
        "import numpy as np\n"
        "from taskflow.hashing import task_hash\n"
        "args = ({'b': {1, 2, 'x'}, 'a': frozenset({'p', 'q'})}, [np.arange(3, dtype=np.int64)], 'z')\n"
        "print(task_hash('m.f', args, {'y': 1, 'x': 2})[0])\n"
    )
    env = {"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_same_hash_under_different_hash_seeds():
    first = _hashes_in_subprocess("1")
    assert first == _hashes_in_subprocess("4242")
    assert first == _hashes_in_subprocess("0")
    assert first == "21064cb92193d1a22c7523802dbf2bd2"  # pinned, like VECTORS


@pytest.mark.parametrize("a, b", [
    (1, 1.0), ((1,), [1]), (True, 1), ("1", 1), (b"a", "a"), (set(), frozenset()), ([], ()),
    (None, 0), (0.0, -0.0), (np.int32(1), np.int64(1)), (np.float64(1), 1.0),
    (np.arange(3, dtype=np.int32), np.arange(3, dtype=np.int64)),
    (np.zeros((2, 3)), np.zeros((3, 2))), ({"a": 1}, [("a", 1)]),
])
def test_distinct_values_hash_differently(a, b):
    assert task_hash("m.f", (a,), {})[0] != task_hash("m.f", (b,), {})[0]


def test_dict_and_set_order_do_not_matter():
    d1 = {"a": 1, "b": 2, "c": [3]}
    d2 = {"c": [3], "b": 2, "a": 1}
    assert task_hash("m.f", (d1,), {})[0] == task_hash("m.f", (d2,), {})[0]
    assert task_hash("m.f", (), {"x": 1, "y": 2})[0] == task_hash("m.f", (), {"y": 2, "x": 1})[0]
    s1 = set(range(100))
    s2 = set(reversed(range(100)))
    assert task_hash("m.f", (s1,), {})[0] == task_hash("m.f", (s2,), {})[0]


def test_name_and_positions_matter():
    assert task_hash("m.f", (1, 2), {})[0] != task_hash("m.f", (2, 1), {})[0]
    assert task_hash("m.f", (1,), {})[0] != task_hash("m.g", (1,), {})[0]
    assert task_hash("m.f", (1,), {})[0] != task_hash("m.f", (), {"x": 1})[0]


def test_non_contiguous_view_hashes_like_its_copy():
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    view = base[::2, 1::2]
    assert not view.flags.c_contiguous
    assert task_hash("m.f", (view,), {})[0] == task_hash("m.f", (view.copy(),), {})[0]
    fortran = np.asfortranarray(base)
    assert task_hash("m.f", (fortran,), {})[0] == task_hash("m.f", (base,), {})[0]


def test_byte_order_does_not_matter_for_equal_values():
    little = np.arange(5, dtype="<i4")
    big = little.astype(">i4")
    assert task_hash("m.f", (little,), {})[0] == task_hash("m.f", (big,), {})[0]


def test_array_data_matters():
    a = np.zeros(1000)
    b = a.copy()
    b[999] = 1e-300
    assert task_hash("m.f", (a,), {})[0] != task_hash("m.f", (b,), {})[0]


class Tagged(np.ndarray):
    """An array subclass, as libraries make them (units, labels)."""


def test_array_subclasses_never_share_a_hash_with_their_plain_data():
    plain = np.array([1, 2])
    visible = np.ma.array([1, 2], mask=[0, 0])
    hidden = np.ma.array([1, 2], mask=[0, 1])
    hashes = {task_hash("m.f", (v,), {})[0] for v in (plain, visible, hidden, plain.view(Tagged))}
    assert len(hashes) == 4
    assert task_hash("m.f", (hidden,), {})[0] == task_hash("m.f", (np.ma.array([1, 2], mask=[0, 1]),), {})[0]
    other_fill = np.ma.array([1, 2], mask=[0, 1], fill_value=-1)
    assert task_hash("m.f", (other_fill,), {})[0] != task_hash("m.f", (hidden,), {})[0]


def double(x):
    return 2 * x


def test_tasks_inside_object_arrays_are_refused():
    arr = np.empty(1, dtype=object)
    arr[0] = Task(double, 1)
    with pytest.raises(UnhashableArgumentError, match="argument 1: tasks inside a numpy object array"):
        Task(double, arr)


def test_object_arrays_and_structured_dtypes():
    obj = np.array([1, "a", None], dtype=object)
    assert task_hash("m.f", (obj,), {})[0] == task_hash("m.f", (obj.copy(),), {})[0]
    rec = np.zeros(3, dtype=[("x", "i4"), ("y", "f8")])
    assert task_hash("m.f", (rec,), {})[0] != task_hash("m.f", (np.zeros(3),), {})[0]


class Custom:
    def __init__(self, key):
        self.key = key

    def __taskflow_hash__(self):
        return f"custom:{self.key}"


class Color(enum.Enum):
    RED = 1


Point = namedtuple("Point", "x y")


def test_custom_hash_enum_namedtuple():
    assert task_hash("m.f", (Custom(1),), {})[0] == task_hash("m.f", (Custom(1),), {})[0]
    assert task_hash("m.f", (Custom(1),), {})[0] != task_hash("m.f", (Custom(2),), {})[0]
    assert task_hash("m.f", (Color.RED,), {})[0] != task_hash("m.f", (1,), {})[0]
    assert task_hash("m.f", (Point(1, 2),), {})[0] != task_hash("m.f", ((1, 2),), {})[0]


def plain(x):
    return x


def test_tasks_contribute_their_hash_and_become_dependencies():
    t1 = Task(plain, 1)
    t2 = Task(plain, 2)
    consumer = Task(plain, [t1, {"k": (t2,)}])
    assert {d.hash for d in consumer.deps} == {t1.hash, t2.hash}
    again = Task(plain, [Task(plain, 1), {"k": (Task(plain, 2),)}])
    assert again.hash == consumer.hash
    other = Task(plain, [t2, {"k": (t1,)}])
    assert other.hash != consumer.hash


def test_task_elements_hash_by_base_and_path():
    t = Task(plain, (1, {"sq": 4}))
    assert Task(plain, t[0]).hash != Task(plain, t[1]).hash
    assert Task(plain, t[1]["sq"]).hash == Task(plain, Task(plain, (1, {"sq": 4}))[1]["sq"]).hash
    assert Task(plain, t[0]).deps == (t,)


def test_task_element_indexed_by_a_task_vector():
    # An index task enters the element's hash as its own hash: pinned, since results are stored under it.
    t, i = Task(plain, "base"), Task(plain, 3)
    assert Task(plain, t[i]).hash == "9ab33ce78dc3ecacb537050260651e1c"
    assert Task(plain, t[i:t[0]]).hash == "2c39316811e117e581c9f823baa19039"
    assert {d.hash for d in Task(plain, t[i:t[0]]).deps} == {t.hash, i.hash}


class NotHashable:
    pass


def test_unsupported_argument_names_task_and_argument():
    with pytest.raises(UnhashableArgumentError) as info:
        Task(plain, [1, {"k": NotHashable()}])
    message = str(info.value)
    assert "test_hashing.plain" in message
    assert "argument 1[1]['k']" in message
    assert "__taskflow_hash__" in message
    assert info.value.task == "test_hashing.plain"
    with pytest.raises(UnhashableArgumentError, match="keyword argument opt"):
        Task(plain, 1, opt=NotHashable())


def test_lambdas_and_local_functions_are_refused():
    with pytest.raises(TaskDeclarationError, match="lambda"):
        Task(lambda x: x, 1)

    def local(x):
        return x

    with pytest.raises(TaskDeclarationError, match="inside other functions"):
        TaskGenerator(local)
    with pytest.raises(UnhashableArgumentError, match="lambda"):
        Task(plain, lambda: 1)


def test_module_level_functions_hash_by_name():
    assert task_hash("m.f", (plain,), {})[0] == task_hash("m.f", (plain,), {})[0]
    assert task_hash("m.f", (plain,), {})[0] != task_hash("m.f", (Custom,), {})[0]


def test_the_unhashable_hint_names_every_type_the_readme_lists():
    import pathlib
    import re

    from taskflow.hashing import HINT

    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    listed = re.search(r"Supported argument\s+types: (.*?)`__taskflow_hash__", readme, re.S).group(1)
    for kind in ["bytearray", "set", "frozenset", "slices", "paths", "enums", "numpy arrays", "scalars",
                 "task elements", "module-level functions", "classes"]:
        assert kind in " ".join(listed.split()), kind
        assert kind in HINT, kind


def test_a_single_int_argument_hashes_as_every_other_int_argument_does():
    """f(i) has a shortcut through task_hash: its hash is still the encoding's bytes for an int
    argument, written out here by hand, and True stays apart from 1."""
    for i in (0, 1, -7, 2**70):
        alone = task_hash("m.f", (i,), {})
        assert alone[1] == {}
        encoded = bytearray(ENCODING_VERSION)
        encoded += b"n3:m.fi%d;" % i
        assert alone[0] == hashlib.blake2b(encoded, digest_size=16).hexdigest()
    assert task_hash("m.f", (True,), {})[0] != task_hash("m.f", (1,), {})[0]
    assert task_hash("m.f", (1,), {})[0] != task_hash("m.f", (1,), {"x": 1})[0]
