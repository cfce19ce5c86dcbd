#!/usr/bin/env bash
# Create ./.venv (if missing) and install the project into it with a pinned CPU build of torch. Arguments are
# extra pip install arguments.
#   bash scripts/setup_venv.sh -e .                                   # the demo
#   bash scripts/setup_venv.sh -e ".[test]" -r requirements-dev.txt    # the tests
#
# torch comes from PyTorch's CPU index when it can be reached (a ~200 MB CPU build; PyPI's Linux torch is the
# CUDA build, several GB). Where that index cannot be reached, or has no wheel for this machine, torch comes from
# PyPI (or from a local wheel directory named by pip's own configuration, e.g. PIP_FIND_LINKS). Environment:
#   PYTHON [python3]   SOGS_TORCH_INDEX_URL [https://download.pytorch.org/whl/cpu]   SOGS_TORCH_INDEX=pypi (skip it)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
TORCH_INDEX_URL=${SOGS_TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
# A pip recent enough for `--dry-run --report` and PEP 658 metadata; pinned so that CI is repeatable.
PIP_VERSION=26.3

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip_install() {
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@"
}

# index_reachable URL: true when URL answers within 10 s (a DNS failure answers at once).
index_reachable() {
    .venv/bin/python - "$1" <<'PY' >/dev/null 2>&1
import sys
import urllib.request

urllib.request.urlopen(sys.argv[1], timeout=10).close()
PY
}

pip_install "pip==$PIP_VERSION"
if .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    :  # already there
elif [ "${SOGS_TORCH_INDEX:-}" != "pypi" ] && index_reachable "$TORCH_INDEX_URL/torch/" \
        && pip_install "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"; then
    echo "setup_venv: torch $TORCH_VERSION from $TORCH_INDEX_URL" >&2
else
    echo "setup_venv: $TORCH_INDEX_URL not reachable (or no wheel there for this machine): torch $TORCH_VERSION" \
         "from PyPI (on Linux that is the CUDA build, several GB)" >&2
    pip_install "torch==$TORCH_VERSION"
fi
# torch named again so that nothing below can replace the build installed above.
pip_install "torch==$TORCH_VERSION" "$@"
