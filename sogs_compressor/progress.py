"""Progress reporting: a callable ``progress(stage, fraction)`` that stages call as they go.

``fraction`` is 0.0 when a stage starts and 1.0 when it ends (values in between for long stages). The CLI shows
it on a TTY; the job turns it into throttled log events with percent and ETA.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

ProgressCallback = Callable[[str, float], None]


def no_progress(stage: str, fraction: float) -> None:
    """The default: report nothing."""


class ConsoleProgress:
    """One self-overwriting stderr line per stage, only when stderr is a TTY."""

    def __init__(self, enabled: bool = True, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self._last = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if 0.0 < fraction < 1.0 and now - self._last < 0.2:
            return
        self._last = now
        end = "\n" if fraction >= 1.0 else ""
        self.stream.write(f"\r  {stage:<12} {fraction * 100:5.1f}%{end}")
        self.stream.flush()
