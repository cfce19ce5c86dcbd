"""sha256 of inputs and outputs: multipart ETags are not MD5, so reports carry their own digest."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from sogs_compressor.errors import Interrupted

CHUNK = 4 * 1024 * 1024


def sha256_file(path: str | Path, should_stop: Callable[[], bool] | None = None) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks (constant memory for multi-GB PLYs).

    ``should_stop`` is asked between chunks (Interrupted when it says so), so a signal never waits for a
    multi-GB hash. hashlib releases the GIL on large chunks: hashing in a thread runs beside other work.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            if should_stop is not None and should_stop():
                raise Interrupted(f"stopped while hashing {Path(path).name}")
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
