"""Shared fixtures: where the peer decoder and the shared real scenes are, and small generated scenes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO.parent / "shared" / "data" / "real"


def peer_command() -> list[str] | None:
    """The splat-transform 3.7.0 CLI (installed by scripts/test.sh into .peer/), or None."""
    local = REPO / ".peer" / "node_modules" / ".bin" / "splat-transform"
    if local.exists() and shutil.which("node"):
        return [str(local)]
    return None


@pytest.fixture(scope="session")
def splat_transform() -> list[str]:
    command = peer_command()
    if command is None:
        if os.environ.get("SOGS_REQUIRE_PEER") == "1":
            pytest.fail("splat-transform peer is required (SOGS_REQUIRE_PEER=1) but .peer/ has no install")
        pytest.skip("splat-transform peer not installed (run scripts/test.sh, which installs it into .peer/)")
    return command


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not SHARED_REAL.is_dir():
        pytest.skip(f"shared real scenes not present at {SHARED_REAL} (only on the project's machines)")
    return SHARED_REAL
