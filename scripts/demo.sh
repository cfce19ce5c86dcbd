#!/usr/bin/env bash
# Set up a virtual environment (CPU torch pinned) and run the main job on built-in sample scenes.
# Output lands in ./demo/output (SOG files + reports). Pass --device cuda on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh -e .
exec .venv/bin/sogs-compressor demo "$@"
