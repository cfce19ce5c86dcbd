"""How many CPUs this process may use, and how OpenMP threads wait: sized so that a shared machine never collapses.

``os.cpu_count()`` is the host's count; inside a container or a job with a CPU quota, or beside other busy
processes, a thread pool of that size oversubscribes the cores. torch's OpenMP threads then spin-wait for each
other and a CPU render runs several times slower (bench/RESULTS.md). This module imports no torch: the OpenMP
defaults must be in the environment before torch loads its OpenMP runtime.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")

OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}
"""OpenMP threads sleep instead of spinning between parallel regions: on a machine whose cores other work also
uses, spinning threads made CPU renders several times slower, while sleeping costs a little on an idle host
(bench/RESULTS.md, "CPU threads"). A user's own ``OMP_WAIT_POLICY`` wins."""


def cgroup_cpu_limit(v2: Path = CGROUP_V2_CPU_MAX, v1_quota: Path = CGROUP_V1_QUOTA,
                     v1_period: Path = CGROUP_V1_PERIOD) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (``docker run --cpus``, Kubernetes limits), or None."""
    try:
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(v1_quota.read_text())
        period_us = int(v1_period.read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup quota (rounded up), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def thread_count() -> int:
    """Threads for a CPU pool: ``$OMP_NUM_THREADS`` when set to a positive integer, else ``usable_cpus()``."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return usable_cpus()


def set_openmp_defaults() -> None:
    """Put OPENMP_DEFAULTS into the environment where the user has not set them (before torch is imported)."""
    for key, value in OPENMP_DEFAULTS.items():
        os.environ.setdefault(key, value)
