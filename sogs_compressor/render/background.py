"""The original scene's quality-check renders, drawn on a thread while the encoder runs (overlap, not less work).

The quality check renders the original and the decoded scene from the same cameras; only the second half needs
the encoder's output. On a CPU the encoder leaves cores idle for long stretches (the k-means' small matrix
products, the host codebooks, the GIL-bound steps), so the original's renders start as soon as the splats are in
texture order and the check later waits only for what is left of them (bench/RESULTS.md, "CPU path").
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

import torch

from sogs_compressor.render.camera import Camera
from sogs_compressor.render.rasterize import RenderResult
from sogs_compressor.splats import SplatSet

ReferenceViews = tuple[list[Camera], str, list[RenderResult]]
"""(cameras, their source for the report, the original's renders): what ``pipeline.measure_quality`` reuses."""


class Cancelled(Exception):
    """Raised between two views once ``BackgroundReference.cancel`` was called."""


class BackgroundReference:
    """Cameras and renders of ``original`` for a quality check, made on a daemon thread from construction on.

    ``cameras(original)`` -> (cameras, source) is the quality check's camera choice (``pipeline.quality_cameras``).
    ``result()`` waits and returns ``ReferenceViews`` or raises what the thread raised (a RenderError, a
    MemoryError...), so the caller handles it exactly as if it had rendered in its own thread. ``cancel()`` stops
    the thread after the view in hand (a scene that failed, a signal) and releases the renders.
    """

    def __init__(self, original: SplatSet, cameras: Callable[[SplatSet], tuple[list[Camera], str]],
                 device: torch.device) -> None:
        self._future: Future[ReferenceViews] = Future()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(original, cameras, device), daemon=True,
                                        name="reference-renders")
        self._thread.start()

    def _run(self, original: SplatSet, cameras: Callable, device: torch.device) -> None:
        from sogs_compressor.render.quality import render_views

        try:
            chosen, source = cameras(original)

            def check_stop() -> None:
                if self._stop.is_set():
                    raise Cancelled

            check_stop()
            renders = render_views(original, chosen, device, allow_empty=True, on_view=check_stop)
            self._future.set_result((chosen, source, renders))
        except BaseException as error:  # handed to result(), raised in the caller's thread
            self._future.set_exception(error)

    def result(self) -> ReferenceViews:
        return self._future.result()

    def cancel(self) -> None:
        self._stop.set()

