"""SIGTERM/SIGINT handling: set a flag the job polls, and guarantee the process is gone within seconds.

Python running as PID 1 (a container entrypoint) ignores SIGTERM unless it has a handler. The handler only sets
a flag; the batch abandons the current scene at the next stage boundary, and network waits notice it within a
tenth of a second (``fetch/waiting.py``). A codec stage can run longer than the grace period, so a watchdog
thread then runs the registered finalizer (reports, message, clean-up) itself. Either way the process ends with
``os._exit`` once logs are flushed, by ``EXIT_DEADLINE_S`` after the signal at the latest: interpreter teardown
(joining threads blocked on sockets, unloading torch) is never waited for.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

from sogs_compressor.interrupt import hard_exit

DEFAULT_GRACE_S = 3.0  # the main path's time to finish by itself before the watchdog finalizes
EXIT_DEADLINE_S = 4.0  # after the signal, the process has exited by then whatever it was doing (target: 5 s)
INTERRUPTED = 130


class StopFlag:
    """Set by SIGTERM/SIGINT (or by hand); callable as ``should_stop``."""

    def __init__(self, grace_s: float = DEFAULT_GRACE_S, deadline_s: float = EXIT_DEADLINE_S) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None
        self.grace_s = grace_s
        self.deadline_s = max(deadline_s, grace_s)
        self.set_at: float | None = None
        self._finalizer: Callable[[], int | None] | None = None
        self.exit_code: int | None = None  # what the finalizer returned
        self._final_lock = threading.Lock()
        self._finalized = threading.Event()
        self._watchdog: threading.Timer | None = None

    def __call__(self) -> bool:
        return self._event.is_set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self, signal_name: str = "stop") -> None:
        if self._event.is_set():
            return
        self.signal_name = signal_name
        self.set_at = time.monotonic()
        self._event.set()
        if self._finalizer is not None and self.grace_s > 0:
            self._watchdog = threading.Timer(self.grace_s, self._force_exit)
            self._watchdog.daemon = True
            self._watchdog.start()

    def remaining(self) -> float:
        """Seconds left before the exit deadline (infinite while no stop was asked for)."""
        if self.set_at is None:
            return float("inf")
        return max(0.0, self.set_at + self.deadline_s - time.monotonic())

    def install(self) -> StopFlag:
        """Handle SIGTERM and SIGINT in this (main) thread."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.set(signal.Signals(signum).name)

    def on_timeout(self, finalizer: Callable[[], int | None]) -> None:
        """What the watchdog runs before ending the process if the job has not finished by itself."""
        self._finalizer = finalizer

    def finalize_once(self, finalizer: Callable[[], int | None]) -> bool:
        """Run ``finalizer`` (its result becomes ``exit_code``) unless the watchdog or an earlier call already
        did; True when it ran here."""
        if not self._final_lock.acquire(blocking=False):
            return False
        try:
            self.exit_code = finalizer()
        finally:
            self._finalized.set()
        return True

    def wait_for_exit(self) -> None:
        """Called when the watchdog holds the finalizer: it ends the process; wait for that (bounded)."""
        self._finalized.wait(self.remaining() + 1.0)

    def exit_now(self, code: int) -> None:
        """End the process with ``code`` right away, logs flushed, without interpreter teardown."""
        hard_exit(code)

    def _force_exit(self) -> None:
        if self._final_lock.acquire(blocking=False):
            try:
                if self._finalizer is not None:
                    self._finalizer()
            finally:
                self.exit_now(INTERRUPTED)
        # The main thread is finalizing (it exits by itself when done): wait for it until the deadline only.
        self._finalized.wait(self.remaining())
        self.exit_now(self.exit_code if self.exit_code is not None else INTERRUPTED)
