"""Peak memory in the reports: bytes on Linux, and no import error where ``resource`` does not exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sogs_compressor.peak_memory import peak_rss_bytes

REPO = Path(__file__).resolve().parents[1]


def run(script: str) -> str:
    """SCRIPT's output in a fresh interpreter (this process's peak is whatever earlier tests left)."""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_peak_rss_counts_bytes_and_grows_with_an_allocation():
    before, after = map(int, run(
        "import numpy as np\n"
        "from sogs_compressor.peak_memory import peak_rss_bytes\n"
        "before = peak_rss_bytes()\n"
        "block = np.ones(64 * 1024 * 1024, dtype=np.uint8)  # 64 MiB, touched\n"
        "print(before, peak_rss_bytes())").split())
    assert before > 10 * 1024 * 1024  # a Python process with numpy is tens of MiB, not tens of KiB
    assert after >= before + 48 * 1024 * 1024
    assert peak_rss_bytes() > 0


def test_reports_zero_without_the_resource_module():
    # Windows has no ``resource`` module: the import must not fail and the value must say "unknown" (0).
    script = ("import sys; sys.modules['resource'] = None\n"
              "from sogs_compressor.peak_memory import peak_rss_bytes\n"
              "print(peak_rss_bytes())")
    assert run(script) == "0"
