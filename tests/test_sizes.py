"""Modules and classes stay small enough to read in one sitting."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "taskflow"
MODULE_LINES = 400
CLASS_LINES = 210  # "about 200": a few lines of slack, not a second screen


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_over_the_limit():
    long = {str(p.relative_to(PACKAGE)): n for p in _modules()
            if (n := len(p.read_text().splitlines())) > MODULE_LINES}
    assert long == {}, f"modules over {MODULE_LINES} lines: {long}"


def test_no_class_is_over_the_limit():
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                size = node.end_lineno - node.lineno + 1
                if size > CLASS_LINES:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = size
    assert long == {}, f"classes over {CLASS_LINES} lines: {long}"
