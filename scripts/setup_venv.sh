#!/usr/bin/env bash
# Create ./.venv (if missing) and install the project into it, torch pinned to the CPU wheel the test machines
# carry (an unpinned torch pulls a multi-GB CUDA build). Arguments are extra pip install arguments.
#   bash scripts/setup_venv.sh -e .                                   # the demo
#   bash scripts/setup_venv.sh -e ".[test]" -r requirements-dev.txt    # the tests
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check "$@"
