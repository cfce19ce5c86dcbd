"""Named stages: what every stage of a compress does around its own work, written once.

A stage is a function with one job, declared with ``@stage``; its name is its key in the report's ``timings`` and
the stage its ``progress(stage, fraction)`` reports. ``StageRunner`` runs it: a checkpoint first (a signal stops
the scene there, before the stage starts), then ``progress(name, 0.0)``, the work (a CUDA out-of-memory inside it
becomes the one-line ``out_of_memory_error`` naming what ran out), its seconds into ``timings`` and
``progress(name, 1.0)``. A stage that raises leaves no timing behind.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, ParamSpec, TypeVar

import torch

from sogs_compressor.device import out_of_memory_as
from sogs_compressor.errors import Interrupted
from sogs_compressor.progress import ProgressCallback, no_progress

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Stage(Generic[P, R]):
    """A stage's work and what it reports (``stage`` makes one)."""

    work: Callable[P, R]
    progress: str | None
    """The progress stage it reports its start and end as; None for stages that report none of their own."""
    out_of_memory: str | None
    """What a CUDA out-of-memory inside it reports running out for (``"encoding"``); None: not translated."""
    checkpoint: bool
    timed: bool

    @property
    def name(self) -> str:
        return self.work.__name__


def stage(*, progress: bool | str = True, out_of_memory: str | None = None, checkpoint: bool = True,
          timed: bool = True) -> Callable[[Callable[P, R]], Stage[P, R]]:
    """Declare a stage named as the decorated function.

    ``progress``: report the stage as its name (True), under another name (a string: ``webp_wait`` reports as
    ``webp``) or not at all (False: stages too short for a bar, or that report their own).
    ``checkpoint``: check for a stop before it (False where the scene is past stopping cleanly, or not begun).
    ``timed``: its seconds go to ``timings[name]`` (False for a stage whose work reports its own timings).
    """

    def declare(work: Callable[P, R]) -> Stage[P, R]:
        reported = work.__name__ if progress is True else progress or None
        return Stage(work, reported, out_of_memory, checkpoint, timed)

    return declare


class StageRunner:
    """Runs one scene's stages: the checkpoint before each, its progress, its timing and the out-of-memory
    translation on ``device``.

    ``timings``: where each stage's seconds go (the result's ``timings``); ``should_stop``: the signal handlers'
    question, asked at each checkpoint."""

    def __init__(self, timings: dict[str, float], progress: ProgressCallback | None = None,
                 should_stop: Callable[[], bool] | None = None, device: torch.device | None = None) -> None:
        self.timings = timings
        self.progress = progress or no_progress
        self.should_stop = should_stop
        self.device = device

    def checkpoint(self) -> None:
        """Raise ``Interrupted`` when a signal asked the run to stop."""
        if self.should_stop is not None and self.should_stop():
            raise Interrupted("stopped by a signal before the scene was complete; nothing was written for it")

    def __call__(self, stage: Stage[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``stage``'s work with these arguments; what it returns."""
        if stage.checkpoint:
            self.checkpoint()
        started = time.perf_counter()
        if stage.progress is not None:
            self.progress(stage.progress, 0.0)
        with self._out_of_memory_as(stage.out_of_memory):
            value = stage.work(*args, **kwargs)
        if stage.timed:
            self.timings[stage.name] = time.perf_counter() - started
        if stage.progress is not None:
            self.progress(stage.progress, 1.0)
        return value

    def _out_of_memory_as(self, what: str | None) -> contextlib.AbstractContextManager:
        if what is None:
            return contextlib.nullcontext()
        if self.device is None:
            raise ValueError(f"a stage that translates out-of-memory ({what}) needs the runner's device")
        return out_of_memory_as(self.device, what)
