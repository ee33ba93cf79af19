"""Pictures of the task graph in Graphviz dot: one node per task name, or every task."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence

from .errors import TaskflowError, UsageError
from .statusreport import STATES, StatusReport
from .task import Task

FULL_LIMIT = 2000
COLOURS = {"finished": "#8fd18f", "running": "#7fb2f0", "ready": "#f5e27a",
           "waiting": "#dddddd", "failed": "#f08080"}


def _quote(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def _dominant(counts: dict[str, int]) -> str:
    # Failures and running work matter most to someone reading the picture.
    for state in ("failed", "running", "ready", "waiting", "finished"):
        if counts.get(state):
            return state
    return "finished"


def collapsed_dot(tasks: Sequence[Task], report: StatusReport) -> str:
    """One node per task name, labelled with counts per state; edges weighted by dependency count."""
    edges: Counter = Counter()
    for t in tasks:
        for d in t.deps:
            edges[(d.name, t.name)] += 1
    lines = ["digraph taskflow {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    for name, counts in report.counts.items():
        parts = [f"{s} {counts[s]}" for s in STATES if counts[s]]
        label = f"{name}\\n" + ", ".join(parts)
        lines.append(f"  {_quote(name)} [label={_quote(label)}, "
                     f"fillcolor={_quote(COLOURS[_dominant(counts)])}];")
    for (src, dst), n in edges.items():
        lines.append(f"  {_quote(src)} -> {_quote(dst)} [label=\"{n}\", penwidth={1 + min(n, 1000) ** 0.3:.2f}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def full_dot(tasks: Sequence[Task], states: dict[str, str]) -> str:
    """Every task as its own node, coloured by state."""
    if len(tasks) > FULL_LIMIT:
        raise UsageError(f"--full draws every task, and this graph has {len(tasks)} (limit {FULL_LIMIT}); "
                         "drop --full for one node per task name")
    lines = ["digraph taskflow {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    for t in tasks:
        label = f"{t.name}\\n{t.hash[:8]}"
        lines.append(f"  \"{t.hash}\" [label=\"{label}\", fillcolor={_quote(COLOURS[states[t.hash]])}];")
    for t in tasks:
        for d in t.deps:
            lines.append(f"  \"{d.hash}\" -> \"{t.hash}\";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write(dot_source: str, output: str) -> str:
    """Write `output` (.dot, .svg or .png); returns the path written.

    Without Graphviz, an .svg/.png request writes the .dot file beside it and
    raises an error saying so.
    """
    ext = os.path.splitext(output)[1].lower()
    if ext not in (".dot", ".gv", ".svg", ".png"):
        raise UsageError(f"{output}: give a .dot, .svg or .png file name")
    if ext in (".dot", ".gv"):
        with open(output, "w") as f:
            f.write(dot_source)
        return output
    dot = shutil.which("dot")
    if dot is None:
        fallback = os.path.splitext(output)[0] + ".dot"
        with open(fallback, "w") as f:
            f.write(dot_source)
        raise TaskflowError(f"Graphviz `dot` is not installed (apt-get install graphviz), so {output} was not "
                            f"drawn; the graph is in {fallback}")
    proc = subprocess.run([dot, f"-T{ext[1:]}", "-o", output], input=dot_source.encode(), capture_output=True)
    if proc.returncode != 0:
        raise TaskflowError(f"dot failed drawing {output}: {proc.stderr.decode(errors='replace').strip()}")
    return output
