"""SIGTERM and SIGINT for the command line: stop within seconds, keep nothing unfinished, exit 130 with one line.

The handler raises ``Interrupted`` in the main thread, which unwinds the current stage (its clean-up removes the
unfinished scene's files: ``inflight``) and reaches the CLI's error report. A stage can sit in native code
(a CUDA synchronisation, a libwebp call) that Python cannot interrupt; a watchdog then removes what is in flight,
writes the one line itself and ends the process. A second signal ends it at once the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import threading

from sogs_compressor import inflight
from sogs_compressor.errors import Interrupted

GRACE_S = 3.0
"""Seconds the main thread gets to unwind by itself before the watchdog ends the process."""

EXIT_CODE = Interrupted.exit_code

_message_lock = threading.Lock()
_message_written = False
_received: str | None = None


def install(grace_s: float = GRACE_S) -> None:
    """Handle SIGTERM and SIGINT in this process (call from the main thread)."""

    def handle(signum: int, _frame) -> None:
        global _received
        name = signal.Signals(signum).name
        if _received is not None:
            force_exit()
        _received = name
        watchdog = threading.Timer(grace_s, force_exit)
        watchdog.daemon = True
        watchdog.start()
        raise Interrupted(f"interrupted by {name}; the unfinished scene's outputs were removed")

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)


def report_once(line: str) -> bool:
    """Write the error line unless it was written already (by the CLI or the watchdog); True when written here."""
    global _message_written
    with _message_lock:
        if _message_written:
            return False
        _message_written = True
    print(line, file=sys.stderr, flush=True)
    return True


def force_exit() -> None:
    """Remove every unfinished output, write the line (once), end the process with exit code 130."""
    inflight.remove_all()
    report_once(f"error: interrupted by {_received or 'a signal'}; stopped without waiting for the current step "
                "(the unfinished scene's outputs were removed)")
    hard_exit(EXIT_CODE)


def flush_output() -> None:
    """Flush the log handlers and stdio: ``os._exit`` skips the interpreter's own flushing."""
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe has nothing more to say
            stream.flush()


def stdout_reader_gone() -> bool:
    """Whether standard output is a pipe whose reader has closed it (``info --json | head``): writing there raises
    BrokenPipeError, which is then no fault of ours. poll() reports it as an error on the write end; where poll is
    missing (Windows) the answer is no."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def silence_stdout() -> None:
    """Point standard output at the null device, so the flushes at exit do not fail on a closed pipe again."""
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


def hard_exit(code: int) -> None:
    """Flush the logs and stdio and end the process now, without interpreter or library teardown.

    Background threads (the CUDA and Triton warm-up, a reader, encoder pools, a socket wait) may still be inside
    native code; tearing the interpreter down around them aborts the process ("terminate called without an
    active exception", exit 134) or waits on them, instead of exiting with the code we mean.
    """
    flush_output()
    os._exit(code)
