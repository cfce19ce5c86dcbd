"""This process's peak resident memory, on every system the CPU path runs on.

``ru_maxrss`` is in KiB on Linux but in bytes on macOS, and Windows has no ``resource`` module at all (the report
then says 0, as it does for an unknown value).
"""

from __future__ import annotations

import sys

try:
    import resource
except ImportError:  # Windows
    resource = None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process in bytes; 0 where the system does not say."""
    if resource is None:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024
