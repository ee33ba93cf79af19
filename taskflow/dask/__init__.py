"""Running a taskfile on a Dask cluster: `execute --dask ADDRESS` and `submit --dask`.

The store stays the source of truth: every task is claimed, run, saved and
released inside its future, on a Dask worker (engine.py), so Dask workers,
ordinary workers and batch-job workers can work on one graph at once and
each task still runs once. The parts: engine.py (what a future runs),
executor.py (the executor: jobs as futures), runner.py (one pass over the
graph), clusters.py (the address: a scheduler, or a LocalCluster) and
jobqueue.py (Dask workers as batch jobs through dask-jobqueue).

Dask is an optional extra: `require` turns its absence into one line.
"""
from __future__ import annotations

import importlib.util

from ..errors import ExtraMissingError

INSTALL = "pip install 'taskflow[dask]'"


def require(what: str = "--dask", jobqueue: bool = False) -> None:
    """ExtraMissingError (exit 2) unless Dask's distributed (and with `jobqueue`, dask-jobqueue) is
    installed. Finds them without importing them (a second and a half)."""
    modules = ["distributed", "dask_jobqueue"] if jobqueue else ["distributed"]
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # ValueError: blocked in sys.modules
            found = False
        if not found:
            raise ExtraMissingError(f"{what} needs {module}, which is not installed: {INSTALL}", extra="dask")
