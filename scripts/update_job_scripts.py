#!/usr/bin/env python3
"""Write scripts/<scheduler>/taskflow_array.* from the job script templates in taskflow/schedulers/templates/.

The scripts are the templates rendered with default settings; tests/test_scheduler_scripts.py
checks that they agree. Run this after changing a template:

    python3 scripts/update_job_scripts.py
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from taskflow.schedulers import SCHEDULERS, ScriptSpec  # noqa: E402


def main() -> None:
    for scheduler in SCHEDULERS.values():
        path = os.path.join(ROOT, scheduler.script)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(scheduler.render())
        os.chmod(path, 0o755)
        print(f"wrote {scheduler.script}")
        description = getattr(scheduler, "description", None)  # HTCondor's submit description beside it
        if description:
            with open(os.path.join(ROOT, description), "w", encoding="utf-8") as f:
                f.write(scheduler.render_description(ScriptSpec()))
            print(f"wrote {description}")


if __name__ == "__main__":
    main()
