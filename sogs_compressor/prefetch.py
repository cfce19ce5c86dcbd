"""Read a scene in the background while the process starts up (imports torch, brings up CUDA).

A fresh process spends seconds importing torch before it can do anything with a GPU; reading a multi-GB PLY
needs none of it. The command line starts the read first (this module imports no torch) and hands the pending
read to ``pipeline.compress_file``. A read that fails at once (no such file, a bad header, a truncated file)
is reported before torch is imported at all, so bad input costs a fraction of a second and starts no GPU work.

After the read, the same thread puts the splats in Morton order on the host (``order.morton.morton_order_host``,
the same permutation as the device's): a fresh process is then usually still importing torch, and the job's
read-ahead runs beside the scene before. The order stage takes it if it is ready (``take_order``); otherwise it
orders on the device and the host's work stops at its next pass.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from pathlib import Path

import numpy as np

from sogs_compressor.errors import SogsError
from sogs_compressor.read import Scene, check_input, read_one_level

EARLY_FAILURE_WAIT_S = 0.05
"""How long ``early_failure`` waits for a read to fail: a missing file or a bad header fails within
milliseconds; a good file is still being read after it."""


HOST_ORDER_MAX_SPLATS = 1 << 20
"""Largest scene put in Morton order on the host after its read (larger ones are ordered in the pipeline). At 4M
splats the host's order (2.2-2.4 s on an H200's host) ran beside a fresh process's ``import torch`` and made it
0.4-0.9 s longer; at 1M (0.7 s) the import was not slowed (bench/RESULTS.md, session 17)."""


def morton_wanted(order: str | None, layout: str | None) -> bool:
    """Whether a scene compressed with these options is put in Morton order by the single-file pipeline (the
    presets' order; a Streamed SOG orders its chunks itself)."""
    from sogs_compressor.layouts import DEFAULT_LAYOUT, layout_named

    try:
        streamed = layout_named(layout or DEFAULT_LAYOUT).streamed
    except KeyError:  # an unknown layout fails its own check later
        return False
    return order in (None, "morton") and not streamed


class ScenePrefetch:
    """One scene being read by a background thread from the moment this is made; ``morton``: then also put in
    Morton order there (see the module docstring)."""

    def __init__(self, path: str | Path, morton: bool = False) -> None:
        self.path = Path(path)
        self.started = time.perf_counter()
        self.finished: float | None = None
        self.order_seconds: float | None = None
        self._future: futures.Future[Scene] = futures.Future()
        self._order: futures.Future[np.ndarray | None] = futures.Future()
        self._order_unwanted = threading.Event()
        threading.Thread(target=self._read, name="scene-read", args=(morton,), daemon=True).start()

    def _read(self, morton: bool) -> None:
        try:
            scene = read_one_level(self.path)  # a Streamed SOG: its level 0
        except BaseException as error:  # handed to whoever asks for the scene
            self.finished = time.perf_counter()
            self._future.set_exception(error)
            self._order.set_result(None)
            return
        self.finished = time.perf_counter()
        self._future.set_result(scene)
        positions = scene.splats.positions
        del scene  # the order holds no reference to the scene: the pipeline may consume it meanwhile
        permutation = None
        if morton and positions.shape[0] <= HOST_ORDER_MAX_SPLATS:
            from sogs_compressor.order.morton import morton_order_host

            try:
                permutation = morton_order_host(positions, self._order_unwanted.is_set)
            except Exception:  # noqa: BLE001 - e.g. memory: the order stage orders on the device instead
                permutation = None
            self.order_seconds = time.perf_counter() - self.finished
        self._order.set_result(permutation)

    def take_order(self) -> tuple[np.ndarray, float] | None:
        """(the scene's Morton permutation, the seconds it took) if computed already, else None, and then it is not
        wanted any more (its computation stops); never waits."""
        if not self._order.done():
            self._order_unwanted.set()
            return None
        permutation = self._order.result()
        return None if permutation is None else (permutation, self.order_seconds or 0.0)

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
