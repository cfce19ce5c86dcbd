"""Test helper: run the real CLI in a subprocess under an address-space limit and a timeout, and check the
promise made for bad input: a documented exit code, exactly one line on stderr, no traceback."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

GiB = 1 << 30
INFO_ADDRESS_SPACE = 1 * GiB
"""Enough for ``info`` / ``decompress`` of small scenes (measured: under 0.4 GiB of address space)."""
COMPRESS_ADDRESS_SPACE = 3 * GiB
"""Enough for ``compress`` of small scenes (measured: ~1.4 GiB, most of it mapped by the torch import)."""


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def limit_address_space(limit: int) -> None:
    """Cap this process's address space (call in the child): a blow-up becomes a MemoryError, not a swapping host."""
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_cli(args: list[str], *, address_space: int = INFO_ADDRESS_SPACE, timeout: float = 60,
            cwd: Path | None = None) -> CliRun:
    """``python -m sogs_compressor ARGS`` under the limits (from the repository root unless ``cwd``)."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "sogs_compressor", *args], capture_output=True, text=True, timeout=timeout,
        cwd=cwd or REPO, preexec_fn=lambda: limit_address_space(address_space),
    )
    return CliRun(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def assert_one_line_error(run: CliRun, code: int, *words: str) -> None:
    """Exit ``code``, and stderr is one ``error: ...`` line (holding each of ``words``) and no traceback."""
    assert run.returncode == code, f"exit {run.returncode}, stderr: {run.stderr!r}"
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1 and run.stderr.endswith("\n"), run.stderr
    assert "Traceback" not in run.stderr
    for word in words:
        assert word in run.stderr, run.stderr
