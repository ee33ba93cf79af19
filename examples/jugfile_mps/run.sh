#!/usr/bin/env bash
# Install taskflow and run the main example on a fresh machine:
# two workers compute the 1,969 tasks, `taskflow status` shows the result,
# and the results notebook is executed headlessly.
#
#   bash examples/jugfile_mps/run.sh
#
# PYTHON picks the interpreter (default python3); if it refuses to install
# packages (an "externally managed" system Python), first make a virtualenv:
#   python3 -m venv .venv && . .venv/bin/activate
# OUTPUT is where the executed notebook goes (default: a new temporary folder);
# the notebook in this folder stays as it is. A second run finds every task
# finished and computes nothing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
output=${OUTPUT:-$(mktemp -d)/results.ipynb}

# Through the interpreter rather than the `taskflow` script, which pip may put
# in a folder that is not on PATH.
taskflow() { "$python" -m taskflow "$@"; }

"$python" -m pip install --quiet -e "$repo[examples]"

cd "$here"
time taskflow execute taskfile.py --jobs 2
taskflow status taskfile.py

"$python" - "$output" <<'EOF'
import sys

import nbformat
from nbclient import NotebookClient

notebook = nbformat.read("results.ipynb", as_version=4)
NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
nbformat.write(notebook, sys.argv[1])
for cell in notebook.cells:
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            sys.stdout.write(out.text)
EOF
echo "executed notebook: $output"
