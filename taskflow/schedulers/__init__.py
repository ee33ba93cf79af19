"""Batch schedulers: writing a worker job script for one, and submitting it as an array job.

Each scheduler is a `Scheduler` (base.py) in its own module (sge.py, slurm.py,
pbs.py, condor.py), listed in `SCHEDULERS` in registry.py; environment.py reads what each tells the
jobs it runs. Job scripts come from the templates in
`templates/`, the same ones behind the hand-usable scripts in the
repository's `scripts/` folder: rendering a template with `ScriptSpec()`
gives exactly that script, and `taskflow submit` renders it with its options.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..units import parse_memory
    from .base import (DEFAULT_LOG_DIR, DEFAULT_NAME, DEFAULT_PYTHON, Scheduler, ScriptSpec, fill, format_walltime,
                       job_number, plain_path, safe_job_name, template_text)
    from .registry import SCHEDULERS, choose, detect, get

__all__ = ["DEFAULT_LOG_DIR", "DEFAULT_NAME", "DEFAULT_PYTHON", "SCHEDULERS", "Scheduler", "ScriptSpec", "choose",
           "detect", "fill", "format_walltime", "get", "job_number", "parse_memory", "plain_path", "safe_job_name",
           "template_text"]

# The module each name lives in, base.py unless listed. Each is imported when first asked for:
# every worker imports environment.py, inside this package, and needs none of the script writing.
_HOMES = {"SCHEDULERS": ".registry", "choose": ".registry", "detect": ".registry", "get": ".registry",
          "parse_memory": "..units"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    module = importlib.import_module(_HOMES.get(name, ".base"), __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value
