"""The import graph of the taskflow package, read from its source, has no cycle.

Module-level imports run when a module is first imported, so a cycle among them
makes the result depend on which module a program happens to import first.
Imports inside functions run later, so they cannot fail that way, but a circle
closed by one still ties the modules together: they are read too, checked for
cycles with the others, and for naming modules that exist.
"""
from __future__ import annotations

import ast
import pathlib

import taskflow

ROOT = pathlib.Path(taskflow.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The taskflow modules a `from ... import ...` names (a module, or names from one)."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target != "taskflow" and not target.startswith("taskflow."):
        return []
    found = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        # `from . import x` of a module x runs x, not more of the package than its parent import did;
        # a name that is not a module comes from the code of `target` itself.
        found.append(sub if sub in MODULES else target)
    return found


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(module-level, function-level) taskflow imports of one module."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    top: set[str] = set()
    inner: set[str] = set()
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST, in_function: bool, in_type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            guarded = in_type_checking or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            names: list[str] = []
            if isinstance(child, ast.ImportFrom):
                names = _resolve(module, is_package, child)
            elif isinstance(child, ast.Import):
                names = [a.name for a in child.names if a.name == "taskflow" or a.name.startswith("taskflow.")]
            # Imports only type checkers see do not run.
            (inner if nested or guarded else top).update(n for n in names if n != module)
            visit(child, nested, guarded)

    visit(tree, False, False)
    return top, inner


GRAPH = {m: _imports(m) for m in MODULES}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    return found


def test_the_graph_is_read_from_every_module():
    assert {"taskflow", "taskflow.cli", "taskflow.task", "taskflow.errors"} <= set(MODULES)
    assert "taskflow.errors" in GRAPH["taskflow"][0]


def test_every_imported_taskflow_module_exists():
    missing = {(m, t) for m, (top, inner) in GRAPH.items() for t in top | inner if t not in MODULES}
    assert not missing


def test_no_cycle_among_module_level_imports():
    assert _cycles({m: top for m, (top, _) in GRAPH.items()}) == []


def test_no_cycle_even_counting_imports_inside_functions():
    """An import inside a function that closes a circle only hides it: the modules still need each other."""
    assert _cycles({m: top | inner for m, (top, inner) in GRAPH.items()}) == []


def test_only_the_store_package_and_doctor_import_a_store_backend():
    """The rest of taskflow asks the store interface: a new backend needs no change outside stores/.
    `doctor` measures a folder store's filesystem, which no other kind of store has."""
    backends = ("taskflow.stores.folder", "taskflow.stores.redis")
    allowed = {"taskflow.doctor"}
    reaching = {(m, t) for m, (top, inner) in GRAPH.items() for t in top | inner
                if t.startswith(backends) and not m.startswith("taskflow.stores") and m not in allowed}
    assert reaching == set()


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_cli_package_offers_what_command_modules_import():
    """A command module outside taskflow/cli/ builds on these names of taskflow.cli."""
    import taskflow.cli as cli
    from taskflow.errors import ExitCode

    for name in ["main", "_common", "_handle_errors", "_open_store", "_store_option", "_configure_logging",
                 "_duration", "TARGET_HELP", "EXIT_CODES_HELP", "log"]:
        assert hasattr(cli, name), name
    assert [cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_USAGE, cli.EXIT_REMAINING, cli.EXIT_STORE,
            cli.EXIT_INTERRUPTED] == list(ExitCode)
    assert set(cli.__all__) <= set(dir(cli))


def test_status_of_a_store_without_jobs_imports_no_scheduler_module(tmp_path):
    """Every command pays for what it imports: `status` of an ordinary store needs no scheduler."""
    import subprocess
    import sys

    (tmp_path / "tf.py").write_text("from taskflow import TaskGenerator\n\n@TaskGenerator\ndef f(x):\n"
                                    "    return x\n\nresults = [f(i) for i in range(3)]\n")
    code = ("import sys\nfrom taskflow.cli import main\ntry:\n    main(['status', 'tf.py'])\n"
            "except SystemExit:\n    pass\n"
            "print([m for m in sys.modules if m.startswith('taskflow.schedulers')], file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "Ready" in proc.stdout, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr
