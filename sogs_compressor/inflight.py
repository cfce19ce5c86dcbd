"""Files of a scene that is not finished yet: removed when the run stops before the scene is complete.

A scene's outputs count as complete only when the whole scene is (written, read back and verified, measured).
Until then every file written for it, and every temporary file being written, is registered here, so that a
failure, a signal, or the watchdog's forced exit (``interrupt.py``) can take them away: an interrupted or failed
run never leaves a file that looks like a finished output.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

_lock = threading.Lock()
_paths: set[Path] = set()


def add(path: str | Path) -> None:
    with _lock:
        _paths.add(Path(path))


def discard(path: str | Path) -> None:
    with _lock:
        _paths.discard(Path(path))


def remove_all() -> list[Path]:
    """Delete every registered file (the forced exit's clean-up); the ones removed."""
    with _lock:
        paths = list(_paths)
        _paths.clear()
    removed = []
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed


class SceneOutputs:
    """The finished files of one scene so far (``track`` registers each one)."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def track(self, path: str | Path) -> None:
        add(path)
        self.paths.append(Path(path))


@contextlib.contextmanager
def scene_outputs() -> Iterator[SceneOutputs]:
    """A scene's outputs: removed if the block raises (any exception, a signal's included), kept and forgotten
    if it completes."""
    outputs = SceneOutputs()
    try:
        yield outputs
    except BaseException:
        for path in outputs.paths:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    finally:
        for path in outputs.paths:
            discard(path)
