"""Peak memory in the reports: bytes on Linux, and no import error where ``resource`` does not exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(script: str) -> str:
    """SCRIPT's output in a fresh interpreter (this process's peak is whatever earlier tests left)."""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc/self/status")
def test_peak_rss_is_in_bytes_and_follows_an_allocation():
    # ru_maxrss keeps the parent's peak across fork + exec on Linux, so the child compares against its own
    # high-water mark (VmHWM, in kB): in KiB instead of bytes the value would be ~1000x too small.
    before, after, hwm = map(int, run(
        "import re, numpy as np\n"
        "from sogs_compressor.host_memory import peak_rss_bytes\n"
        "before = peak_rss_bytes()\n"
        "block = np.ones(64 * 1024 * 1024, dtype=np.uint8)  # 64 MiB, touched\n"
        "hwm = int(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)) * 1024\n"
        "print(before, peak_rss_bytes(), hwm)").split())
    assert hwm > 64 * 1024 * 1024
    assert after >= 0.9 * hwm  # the two high-water marks differ a little (measured: 0.4 MB at 94 MB)
    assert after >= before


def test_reports_zero_without_the_resource_module():
    # Windows has no ``resource`` module: the import must not fail and the value must say "unknown" (0).
    script = ("import sys; sys.modules['resource'] = None\n"
              "from sogs_compressor.host_memory import peak_rss_bytes\n"
              "print(peak_rss_bytes())")
    assert run(script) == "0"
