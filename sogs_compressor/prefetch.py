"""Read a scene in the background while the process starts up (imports torch, brings up CUDA).

A fresh process spends seconds importing torch before it can do anything with a GPU; reading a multi-GB PLY
needs none of it. The command line starts the read first (this module imports no torch) and hands the pending
read to ``pipeline.compress_file``. A read that fails at once (no such file, a bad header, a truncated file)
is reported before torch is imported at all, so bad input costs a fraction of a second and starts no GPU work.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from pathlib import Path

from sogs_compressor.errors import SogsError
from sogs_compressor.read import Scene, check_input, read_one_level

EARLY_FAILURE_WAIT_S = 0.05
"""How long ``early_failure`` waits for a read to fail: a missing file or a bad header fails within
milliseconds; a good file is still being read after it."""


class ScenePrefetch:
    """One scene being read by a background thread from the moment this is made."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.started = time.perf_counter()
        self.finished: float | None = None
        self._future: futures.Future[Scene] = futures.Future()
        threading.Thread(target=self._read, name="scene-read", daemon=True).start()

    def _read(self) -> None:
        try:
            self._future.set_result(read_one_level(self.path))  # a Streamed SOG: its level 0
        except BaseException as error:  # handed to whoever asks for the scene
            self._future.set_exception(error)
        finally:
            self.finished = time.perf_counter()

    def early_failure(self, wait_s: float = EARLY_FAILURE_WAIT_S) -> BaseException | None:
        """The input's error if the header check (``read.check_input``, in this thread: no race with a loaded
        machine) finds one, or if the read has failed within ``wait_s`` seconds of starting; else None."""
        try:
            check_input(self.path)
        except SogsError as error:
            return error
        except Exception:  # anything else is the full read's to report, in its own words
            pass
        remaining = max(0.0, self.started + wait_s - time.perf_counter())
        try:
            self._future.exception(timeout=remaining)
        except futures.TimeoutError:  # the builtin TimeoutError only from Python 3.11
            return None
        return self._future.exception()

    def result(self) -> tuple[Scene, float, float]:
        """(the scene, seconds waited here for it, seconds the read took); raises the read's error."""
        t = time.perf_counter()
        scene = self._future.result()
        return scene, time.perf_counter() - t, (self.finished or time.perf_counter()) - self.started
