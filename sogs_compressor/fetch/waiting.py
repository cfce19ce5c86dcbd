"""Waiting on a blocking call while watching the stop flag, so a signal never waits for the network.

A signal handler only runs between Python bytecodes of the main thread; a socket read (or botocore's retry
back-off) blocks it for as long as the server or the retry policy likes. Running the call in a daemon thread
lets the main thread notice the stop flag within ``POLL_S`` and leave; the process ends soon after, and the
abandoned thread with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from sogs_compressor.errors import Interrupted

POLL_S = 0.1
T = TypeVar("T")
StopCheck = Callable[[], bool] | None


def call_interruptibly(call: Callable[[], T], should_stop: StopCheck, what: str) -> T:
    """``call()``'s result, or ``Interrupted`` as soon as ``should_stop()`` is true (without it: a plain call)."""
    if should_stop is None:
        return call()
    if should_stop():
        raise Interrupted(f"stopped before {what}")
    done = threading.Event()
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # handed to the waiting thread as is
            box["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name="sogs-s3-call", daemon=True).start()
    while not done.wait(POLL_S):
        if should_stop():
            raise Interrupted(f"stopped while {what}")
    if "error" in box:
        raise box["error"]
    return box["value"]
