"""Test helper: run a script under Triton's interpreter (``TRITON_INTERPRET=1``) in a fresh process, as CI runs the
Triton kernels without a GPU, and return the JSON its last line prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_interpreted(script: str, minimum: tuple[int, int], reason: str) -> dict:
    """The script's last stdout line as JSON; skips (with ``reason``) without Triton or before ``minimum``."""
    triton = pytest.importorskip("triton")
    if tuple(int(part) for part in triton.__version__.split(".")[:2]) < minimum:
        pytest.skip(reason)
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=path)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
