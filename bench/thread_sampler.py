"""A sampling profiler of every Python thread, for pipelines whose work runs on thread pools (cProfile sees one
thread): a background thread reads ``sys._current_frames()`` every few milliseconds and counts, per thread-name
prefix, each function on the stack (inclusive) and the innermost one (own). Time spent in C code that releases
the GIL is charged to the Python function that called it, which is what we want to know.

    with ThreadSampler() as sampler:
        work()
    print(sampler.table(top=25))
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter


def _group(name: str) -> str:
    """A pool's threads share one row: ``codebook_0`` and ``codebook_1`` are ``codebook``."""
    return re.sub(r"[_-]?\d+$", "", name) or name


class ThreadSampler:
    def __init__(self, interval_s: float = 0.002) -> None:
        self.interval_s = interval_s
        self.samples: Counter[str] = Counter()
        self.inclusive: dict[str, Counter[str]] = {}
        self.own: dict[str, Counter[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self.wall_s = 0.0
        self.ticks = 0

    def __enter__(self) -> ThreadSampler:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.wall_s = time.perf_counter() - self._t0

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval_s):
            self.ticks += 1
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                group = _group(names.get(ident, str(ident)))
                self.samples[group] += 1
                inclusive = self.inclusive.setdefault(group, Counter())
                seen = set()
                innermost = True
                while frame is not None:
                    code = frame.f_code
                    key = f"{code.co_filename.rsplit('/', 2)[-2:][-1]}:{code.co_name}"
                    if innermost:
                        self.own.setdefault(group, Counter())[key] += 1
                        innermost = False
                    if key not in seen:
                        inclusive[key] += 1
                        seen.add(key)
                    frame = frame.f_back

    def table(self, top: int = 20, groups: list[str] | None = None) -> str:
        """Per thread group: its sampled seconds, then the top functions by inclusive and own seconds."""
        # A tick can come late (the sampler waits for the GIL too): each stands for wall time / ticks.
        tick = self.wall_s / max(self.ticks, 1)
        lines = [f"sampled {self.wall_s:.3f} s of wall time in {self.ticks} ticks ({tick * 1e3:.2f} ms each)"]
        for group, count in self.samples.most_common():
            if groups and group not in groups:
                continue
            lines.append(f"== thread {group}: {count * tick:.3f} s sampled")
            own = self.own.get(group, Counter())
            for key, n in self.inclusive[group].most_common(top):
                lines.append(f"  {n * tick:8.3f} s incl  {own.get(key, 0) * tick:8.3f} s own"
                             f"  {key}")
        return "\n".join(lines)
