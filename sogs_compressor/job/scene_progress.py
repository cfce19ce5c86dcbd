"""A scene's progress in the job's log: the ``progress`` callback the job hands the codec for each scene."""

from __future__ import annotations

import time

from sogs_compressor.job.log import get_logger
from sogs_compressor.progress import LogProgress


class ThrottledProgress:
    """A ``progress(stage, fraction)`` callback for one scene: ``progress`` events with the stage, its percent and
    an ETA, at most one per ``interval`` seconds per stage, and the end of a stage that logged or took that long
    (``progress.StageThrottle``). Stage starts and ends are logged at DEBUG."""

    def __init__(self, scene: str, interval: float = 5.0, logger=None, clock=time.monotonic) -> None:
        self.scene = scene
        self.log = logger or get_logger()
        self.clock = clock
        self._events = LogProgress(lambda fields: self.log.info("progress", scene=scene, **fields), interval, clock)
        self._stage = None
        self._stage_start = 0.0

    @property
    def emitted(self) -> int:
        return self._events.emitted

    def __call__(self, stage: str, fraction: float) -> None:
        now = self.clock()
        if stage != self._stage:
            self._stage, self._stage_start = stage, now
            self.log.debug("stage_start", scene=self.scene, stage=stage)
        if fraction >= 1.0:
            self.log.debug("stage_end", scene=self.scene, stage=stage, seconds=round(now - self._stage_start, 3))
        self._events(stage, fraction)
