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

# The viewer page's browser test: the PlayCanvas engine the page loads by default (sogs_compressor/write/viewer.py
# pins the same version) and playwright-core drive Debian's chromium (SwiftShader WebGL2, no GPU). As root with
# apt-get (CI: .ci/run on a fresh Debian machine) chromium is installed and the test is required; otherwise it
# runs when chromium is there and skips, saying why, when it is not.
if [ ! -d .browser/node_modules/playcanvas ] || [ ! -d .browser/node_modules/playwright-core ]; then
    npm install --silent --no-audit --no-fund --prefix .browser playcanvas@2.23.3 playwright-core@1.65.1
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if ! command -v chromium >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
    export SOGS_REQUIRE_BROWSER=1
fi

.venv/bin/ruff check .
bash scripts/lint.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
