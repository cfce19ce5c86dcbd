#!/usr/bin/env bash
# Set up a virtual environment (CPU torch pinned) and run the main job on built-in sample scenes.
# Output lands in ./demo/output (SOG files + reports). Pass --device cuda on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/sogs-compressor demo "$@"
