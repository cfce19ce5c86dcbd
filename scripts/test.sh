#!/usr/bin/env bash
# Install everything the tests need from scratch (Python deps with a pinned CPU torch, the npm peer decoder,
# the linters), then lint and run the test suite. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup_venv.sh -e ".[test]" -r requirements-dev.txt

# The conformance oracle: PlayCanvas splat-transform's own SOG decoder.
if [ ! -x .peer/node_modules/.bin/splat-transform ]; then
    npm install --silent --no-audit --no-fund --prefix .peer @playcanvas/splat-transform@3.7.0
fi
export SOGS_REQUIRE_PEER=1

.venv/bin/ruff check .
bash scripts/lint.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
