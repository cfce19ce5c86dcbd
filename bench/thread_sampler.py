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


def _other_threads():
    """(thread group, innermost frame) of every thread but the calling one, now."""
    me = threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    return [(_group(names.get(ident, str(ident))), frame)
            for ident, frame in sys._current_frames().items() if ident != me]


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
        while not self._stop.wait(self.interval_s):
            self.ticks += 1
            for group, frame in _other_threads():
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


class Timeline:
    """What each thread was doing over time, for a cold start: every few milliseconds, per thread, a label (the
    innermost frame of our package with its line, and the module being imported below it, if any); consecutive
    equal labels become one segment.

        with Timeline() as timeline:
            import_and_run()
        for thread, start, end, label in timeline.segments(min_s=0.02): ...
    """

    def __init__(self, interval_s: float = 0.002, package: str = "sogs_compressor") -> None:
        self.interval_s = interval_s
        self.package = f"/{package}/"
        self.ticks: list[tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timeline", daemon=True)

    def __enter__(self) -> Timeline:
        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def label(self, frame) -> str:
        ours, imported, innermost = None, None, None
        while frame is not None:
            code = frame.f_code
            if innermost is None:
                innermost = f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}"
            if ours is None and self.package in code.co_filename:
                ours = f"{code.co_filename.split(self.package, 1)[1]}:{code.co_name}:{frame.f_lineno}"
            if ours is None and code.co_name == "_find_and_load":
                imported = frame.f_locals.get("name", imported)  # the outermost import below our frame wins
            frame = frame.f_back
        base = ours or innermost or "?"
        return f"{base} > import {imported}" if imported else base

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            now = time.perf_counter() - self.t0
            self.ticks.extend((now, group, self.label(frame)) for group, frame in _other_threads())

    def segments(self, min_s: float = 0.02) -> list[tuple[str, float, float, str]]:
        """(thread, start s, end s, label) of every run of one label lasting at least ``min_s``, by start."""
        open_runs: dict[str, list] = {}
        done: list[tuple[str, float, float, str]] = []
        for now, group, label in self.ticks:
            run = open_runs.get(group)
            if run is not None and run[2] == label:
                run[1] = now
                continue
            if run is not None:
                done.append((group, run[0], run[1], run[2]))
            open_runs[group] = [now, now, label]
        done.extend((group, run[0], run[1], run[2]) for group, run in open_runs.items())
        return sorted((s for s in done if s[2] - s[1] >= min_s), key=lambda s: s[1])
