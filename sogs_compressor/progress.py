"""Progress reporting: a callable ``progress(stage, fraction)`` that stages call as they go.

``fraction`` is 0.0 when a stage starts and 1.0 when it ends, with values in between from long stages (views
rendered, k-means iterations, WebP textures encoded, PLAS passes), reported once per chunk of work and never from
values that would need a GPU sync. On a terminal it becomes a bar redrawn in place (``ConsoleProgress``);
elsewhere a few structured log events (``LogProgress``: one per ``interval`` seconds per stage at most, plus the
stage's last one when it took that long), so a redirected run's log shows that a long stage is moving without
one line per step.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable

from sogs_compressor.terminal import is_terminal

ProgressCallback = Callable[[str, float], None]

DEFAULT_INTERVAL_S = 5.0
"""Seconds between two progress log events of one stage (``SOGS_PROGRESS_INTERVAL`` overrides)."""
REDRAW_S = 0.1
"""Seconds between two redraws of the terminal bar."""
BAR_WIDTH = 24


def no_progress(stage: str, fraction: float) -> None:
    """The default: report nothing."""


def in_stage(progress: ProgressCallback, stage: str, steps: int) -> Callable[[int], None]:
    """A counter for a loop of ``steps`` steps inside ``stage``: call it with the steps done so far."""
    steps = max(1, steps)
    return lambda done: progress(stage, min(done, steps) / steps)


def interval_from_env(default: float = DEFAULT_INTERVAL_S) -> float:
    """``SOGS_PROGRESS_INTERVAL`` (seconds, >= 0) or ``default``."""
    try:
        value = float(os.environ.get("SOGS_PROGRESS_INTERVAL", default))
    except ValueError:
        return default
    return value if value >= 0 else default


class StageThrottle:
    """Which updates a log gets: one per ``interval`` seconds per stage (counted from the stage's start, so short
    stages stay silent), and the stage's end when the stage logged before or took at least ``interval``."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.stage: str | None = None
        self.started = 0.0
        self._last = 0.0
        self._logged = 0
        self._finished = False

    def update(self, stage: str, fraction: float) -> dict | None:
        """The fields of the event to log for this update (stage, percent, eta_s or seconds), or None."""
        now = self.clock()
        if stage != self.stage or (self._finished and fraction < 1.0):  # a new stage, or the same one again
            self.stage, self.started, self._last, self._logged, self._finished = stage, now, now, 0, False
        elif self._finished:  # a stage's end reported twice (an inner loop's last step, then the stage itself)
            return None
        elapsed = now - self.started
        if fraction >= 1.0:
            self._finished = True
            if self._logged == 0 and elapsed < self.interval:
                return None
            self._logged += 1
            return {"stage": stage, "percent": 100.0, "seconds": round(elapsed, 1)}
        if now - self._last < self.interval:
            return None
        self._last = now
        self._logged += 1
        eta = elapsed * (1.0 - fraction) / fraction if fraction > 0.0 else None
        return {"stage": stage, "percent": round(100.0 * fraction, 1),
                "eta_s": None if eta is None else round(eta, 1)}


class LogProgress:
    """Progress as structured log events through ``emit(fields)`` (throttled by ``StageThrottle``)."""

    def __init__(self, emit: Callable[[dict], None], interval: float = DEFAULT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.emit = emit
        self.throttle = StageThrottle(interval, clock)
        self.emitted = 0
        self._lock = threading.Lock()

    def __call__(self, stage: str, fraction: float) -> None:
        with self._lock:
            fields = self.throttle.update(stage, fraction)
            if fields is not None:
                self.emitted += 1
                self.emit(fields)

    def close(self) -> None:
        """Nothing to finish: every event is a whole line."""


class ConsoleProgress:
    """One line per stage on a terminal, redrawn in place: ``  kmeans   [#####.....]  45%  ETA 12s``; the
    finished line keeps the stage's time. Plain text (no colour codes), at most ``REDRAW_S`` between redraws."""

    def __init__(self, stream=None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.clock = clock
        self._stage: str | None = None
        self._started = 0.0
        self._drawn = -float("inf")
        self._open = False
        self._finished: str | None = None
        self._lock = threading.Lock()

    def __call__(self, stage: str, fraction: float) -> None:
        with self._lock:
            now = self.clock()
            if fraction >= 1.0 and stage == self._finished:
                return  # its end reported twice (an inner loop's last step, then the stage itself)
            self._finished = None
            if stage != self._stage:
                self._end_line()
                self._stage, self._started, self._drawn = stage, now, -float("inf")
            done = fraction >= 1.0
            if not done and now - self._drawn < REDRAW_S:
                return
            self._drawn = now
            self.stream.write("\r" + self._line(stage, min(max(fraction, 0.0), 1.0), now - self._started))
            self._open = not done
            if done:
                self.stream.write("\n")
                self._stage, self._finished = None, stage
            self.stream.flush()

    def _line(self, stage: str, fraction: float, elapsed: float) -> str:
        filled = int(round(fraction * BAR_WIDTH))
        text = f"  {stage:<10} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction * 100:5.1f}%"
        if fraction >= 1.0:
            text += f"  {elapsed:.1f}s"
        elif fraction > 0.0 and elapsed >= 1.0:
            text += f"  ETA {elapsed * (1.0 - fraction) / fraction:.0f}s"
        width = shutil.get_terminal_size((80, 24)).columns - 1
        return text[:width].ljust(min(width, 60))

    def _end_line(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def close(self) -> None:
        """End a line left open (a stage that failed or stopped), so what follows starts on its own line."""
        with self._lock:
            self._end_line()


def command_progress(quiet: bool, scene: str | None = None, stream=None) -> ProgressCallback:
    """The progress a CLI command shows on stderr: nothing with ``-q``, a bar on a terminal, else JSON log
    events (``event: progress``) at most every ``SOGS_PROGRESS_INTERVAL`` seconds per stage."""
    stream = stream or sys.stderr
    if quiet:
        return no_progress
    if is_terminal(stream):
        return ConsoleProgress(stream)
    return LogProgress(_stderr_logger(stream, scene), interval_from_env())


def _stderr_logger(stream, scene: str | None) -> Callable[[dict], None]:
    """An ``emit`` that logs ``progress`` events through the job's structlog set-up on ``stream``, configured at
    the first event (most runs log none and skip the import)."""
    logger = []

    def emit(fields: dict) -> None:
        if not logger:
            from sogs_compressor.job.log import configure_logging, get_logger

            configure_logging("INFO", stream=stream)
            logger.append(get_logger("sogs_compressor.cli"))
        extra = {} if scene is None else {"scene": scene}
        logger[0].info("progress", **extra, **fields)

    return emit


def close(progress: ProgressCallback) -> None:
    """Finish ``progress``'s output if it has any to finish."""
    finish = getattr(progress, "close", None)
    if finish is not None:
        finish()
