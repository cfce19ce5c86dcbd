"""SIGTERM/SIGINT handling: set a flag the codec polls between stages, and guarantee an exit within seconds.

Python running as PID 1 (a container entrypoint) ignores SIGTERM unless it has a handler. The handler only sets
a flag; the batch abandons the current scene at the next stage boundary. A stage can run longer than the
grace period, so a watchdog thread then runs the registered finalizer (reports, message, clean-up) itself and
ends the process with exit code 130.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

DEFAULT_GRACE_S = 3.5


class StopFlag:
    """Set by SIGTERM/SIGINT (or by hand); callable as ``should_stop``."""

    def __init__(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None
        self.grace_s = grace_s
        self._finalizer: Callable[[], None] | None = None
        self._final_lock = threading.Lock()
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
        self._event.set()
        if self._finalizer is not None and self.grace_s > 0:
            self._watchdog = threading.Timer(self.grace_s, self._force_exit)
            self._watchdog.daemon = True
            self._watchdog.start()

    def install(self) -> StopFlag:
        """Handle SIGTERM and SIGINT in this (main) thread."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        self.set(signal.Signals(signum).name)

    def on_timeout(self, finalizer: Callable[[], None]) -> None:
        """What the watchdog runs before ``os._exit(130)`` if the job has not finished by itself."""
        self._finalizer = finalizer

    def finalize_once(self, finalizer: Callable[[], None]) -> bool:
        """Run ``finalizer`` unless the watchdog (or an earlier call) already did; True when it ran here."""
        if not self._final_lock.acquire(blocking=False):
            return False
        finalizer()
        return True

    def _force_exit(self) -> None:
        if self._final_lock.acquire(blocking=False):
            try:
                if self._finalizer is not None:
                    self._finalizer()
            finally:
                os._exit(130)
        # The main thread is finalizing: give it a moment, then exit regardless.
        threading.Event().wait(1.0)
        os._exit(130)
