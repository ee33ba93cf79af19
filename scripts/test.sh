#!/usr/bin/env bash
# Install taskflow with its test dependencies, then run every test; the reasons for skipped
# tests are printed at the end (-rs).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e '.[test]'
python3 -m pytest -rs "$@"
