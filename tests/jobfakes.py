"""Stand-ins for the codec, for job tests that need a stage the real codec only shows on huge scenes.

Run through ``tests/jobdriver.py``, which starts the real job with one of these as its compress function.
"""

from __future__ import annotations

import atexit
import time
from pathlib import Path


def stuck_compress(input_path, output_dir, options, progress=None, should_stop=None):
    """A stage that never reaches a stop check (a long GPU kernel, a multi-GB read): only the watchdog ends it."""
    if progress is not None:
        progress("stuck", 0.0)
    time.sleep(600)
    raise AssertionError("the watchdog should have ended the process")


def compress_with_slow_teardown(input_path, output_dir, options, progress=None, should_stop=None):
    """Stops at once when asked, but registers a slow teardown, as native libraries do at interpreter exit; it
    leaves ``teardown-ran`` beside the input when it runs (the job must exit without running it)."""
    from sogs_compressor.errors import Interrupted

    marker = Path(input_path).with_name("teardown-ran")
    atexit.register(lambda: (marker.write_text("ran"), time.sleep(30)))
    if progress is not None:
        progress("busy", 0.0)
    while not should_stop():
        time.sleep(0.05)
    raise Interrupted("stopped")
