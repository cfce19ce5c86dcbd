"""The next scene read while this one compresses (scenes one after another on one device).

Reading a PLY is disk and CPU work the GPU does not wait for elsewhere: in a batch, the read of scene N+1 can run
while scene N is encoded, so each scene after the first starts with its splats in memory (``read`` in its report
is then the time waited for that read, ``read_background`` the read itself; ``prefetch.ScenePrefetch``). The
read starts once the current scene's own read is done (its first stage after ``read``), so the two never share
the disk, and only when both scenes fit in memory at once (``fits``). ``$SOGS_READ_AHEAD=0`` turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sogs_compressor.host_memory import available_memory_bytes
from sogs_compressor.prefetch import ScenePrefetch

ENV = "SOGS_READ_AHEAD"

PEAK_PER_INPUT_BYTE = 3.0
"""Host memory of a compress per byte of its input file, at most (measured peaks are 1.6-3.1x the PLY above the
process floor: bench/RESULTS.md); the next scene's read holds about its file size more."""
RESERVE_BYTES = 2 << 30
"""Memory kept free beside both scenes: the process floor (CUDA and torch) and the system."""


def enabled(env: dict[str, str] | None = None) -> bool:
    """Whether read-ahead may run (``$SOGS_READ_AHEAD``: ``0``, ``off``, ``false`` or ``no`` turn it off)."""
    value = (os.environ if env is None else env).get(ENV, "").strip().lower()
    return value not in ("0", "off", "false", "no")


def fits(current_bytes: int, next_bytes: int, available: int | None) -> bool:
    """Whether the next scene may be read while the current one compresses: the current scene's peak, the next
    one's splats and the reserve all within what is available now (unknown memory: no)."""
    if available is None:
        return False
    return PEAK_PER_INPUT_BYTE * current_bytes + next_bytes + RESERVE_BYTES <= available


class ReadAhead:
    """At most one scene read in the background, handed to the compress of that scene if its file is unchanged."""

    def __init__(self, memory: Callable[[], int | None] = available_memory_bytes, log=None,
                 morton: bool = False) -> None:
        """``morton``: each scene is also put in Morton order after its read (``prefetch.ScenePrefetch``)."""
        self.memory = memory
        self.log = log
        self.morton = morton
        self._pending: tuple[Path, tuple[int, int], ScenePrefetch] | None = None

    def start(self, path: Path, current_bytes: int) -> bool:
        """Start reading ``path`` unless a read is already pending or memory is short; whether it started."""
        if self._pending is not None:
            return False
        try:
            stat = path.stat()
        except OSError:
            return False  # its own turn reports what is wrong with it
        if not fits(current_bytes, stat.st_size, self.memory()):
            if self.log is not None:
                self.log.info("read_ahead_skipped", scene_path=str(path), reason="memory")
            return False
        self._pending = (path, (stat.st_size, stat.st_mtime_ns), ScenePrefetch(path, self.morton))
        if self.log is not None:
            self.log.debug("read_ahead", scene_path=str(path), bytes=stat.st_size)
        return True

    def take(self, path: Path) -> ScenePrefetch | None:
        """The pending read of ``path``, if it is that file and the file has not changed since it started; any
        other pending read is dropped (its scene was skipped, reused from the cache or failed first)."""
        pending, self._pending = self._pending, None
        if pending is None or pending[0] != path:
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        return pending[2] if (stat.st_size, stat.st_mtime_ns) == pending[1] else None

    def drop(self) -> None:
        """Forget a pending read (its thread finishes on its own; the memory goes with the last reference)."""
        self._pending = None
