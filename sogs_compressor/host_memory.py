"""Host memory: this process's peak resident set, and what it could still take.

``ru_maxrss`` is in KiB on Linux but in bytes on macOS, and Windows has no ``resource`` module at all (the report
then says 0, as it does for an unknown value). What is available is the kernel's MemAvailable capped by a
container's cgroup limit: the job's read-ahead and the WebP encoders size themselves by it.
"""

from __future__ import annotations

import sys
from pathlib import Path

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


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo"),
                           cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Memory this process could still take: the kernel's MemAvailable, capped by a cgroup v2 limit's headroom
    (a container's ``memory.max`` - ``memory.current``); None where neither can be read."""
    available = None
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            headroom = int(limit) - int((cgroup / "memory.current").read_text().strip())
            available = headroom if available is None else min(available, headroom)
    except (OSError, ValueError):
        pass
    return available
