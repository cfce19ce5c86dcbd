"""Several scenes at once: one worker process per GPU (``spawn`` context), each pinned to its ``cuda:i``.

With one device the batch runs in the job's own process instead (see ``batch.run_in_process``). The parent
hands out scenes through a queue, collects outcomes as they finish, notices a worker that died mid-scene, and on
SIGTERM/SIGINT sets an event the workers' ``should_stop`` reads.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
from collections.abc import Callable
from dataclasses import replace

from sogs_compressor.compute_policy import worker_threads
from sogs_compressor.errors import Interrupted
from sogs_compressor.job.batch import Scene, SceneContext, SceneRunner, outcome

POLL_S = 0.2


def _worker_main(worker_id: int, device: str, ctx: SceneContext, compress: Callable, tasks, results,
                 stop_event, cancel_event, log_settings: dict, threads: int) -> None:
    """A worker: compress scenes from ``tasks`` on ``device`` with ``compress`` until it reads ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    from sogs_compressor.fetch.s3 import S3Manager
    from sogs_compressor.job.log import bind_job, configure_logging

    configure_logging(log_settings["level"], log_settings["format"])
    bind_job(**log_settings["bind"], worker=worker_id, device=device)
    if device == "cpu":
        import torch

        torch.set_num_threads(max(1, threads))
    else:
        from sogs_compressor.steps import prepare_device

        prepare_device(device)  # CUDA start-up and kernel compiles overlap the first download
    runner = SceneRunner(replace(ctx, options=replace(ctx.options, device=device)), compress, stop_event.is_set,
                         S3Manager if ctx.s3_output else None)
    while True:
        task = tasks.get()
        if task is None:
            return
        index, scene, clash = task
        if stop_event.is_set() or cancel_event.is_set():
            results.put(("done", index, outcome(scene, "not_started")))
            continue
        results.put(("start", index, worker_id))
        try:
            item = runner.run(scene, clash)
        except Interrupted:
            item = outcome(scene, "interrupted")
        results.put(("done", index, item))


class ParallelRun:
    """The worker processes of one batch; ``kill()`` is safe to call from the interrupt watchdog. ``compress``
    reaches each worker pickled, that is by its module and name: a module-level function."""

    def __init__(self, devices: list[str], ctx: SceneContext, compress: Callable, log_settings: dict) -> None:
        self.mp = multiprocessing.get_context("spawn")
        self.devices = devices
        self.ctx = ctx
        self.compress = compress
        self.log_settings = log_settings
        self.tasks = self.mp.Queue()
        self.results = self.mp.Queue()
        self.stop_event = self.mp.Event()
        self.cancel_event = self.mp.Event()
        self.processes: list = []
        self.scenes: list[Scene] = []
        self.running: dict[int, int] = {}  # scene index -> worker, while a worker compresses it

    def run(self, scenes: list[Scene], clashes: dict[str, str], fail_fast: bool, should_stop: Callable[[], bool],
            results: list[dict]) -> None:
        """Compress ``scenes`` on the workers, appending each outcome to ``results`` as it arrives."""
        self.scenes = scenes
        for index, scene in enumerate(scenes):
            self.tasks.put((index, scene, clashes.get(scene.rel)))
        for _ in self.devices:
            self.tasks.put(None)
        threads = worker_threads(len(self.devices))
        for worker_id, device in enumerate(self.devices):
            process = self.mp.Process(
                target=_worker_main, name=f"sogs-worker-{worker_id}", daemon=True,
                args=(worker_id, device, self.ctx, self.compress, self.tasks, self.results, self.stop_event,
                      self.cancel_event, self.log_settings, threads))
            process.start()
            self.processes.append(process)
        pending = set(range(len(scenes)))
        running = self.running
        while pending:
            if should_stop():
                self.stop_event.set()
            try:
                kind, index, payload = self.results.get(timeout=POLL_S)
            except queue.Empty:
                self._reap(scenes, pending, running, results)
                continue
            if kind == "start":
                running[index] = payload
                continue
            running.pop(index, None)
            pending.discard(index)
            results.append(payload)
            if fail_fast and payload["status"] == "failed":
                self.cancel_event.set()
        self.join()

    def _reap(self, scenes: list[Scene], pending: set[int], running: dict[int, int], results: list[dict]) -> None:
        """Fail the scene of a worker that died; give up on the rest when no worker is left."""
        for index, worker_id in list(running.items()):
            process = self.processes[worker_id]
            if not process.is_alive():
                error = {"kind": "internal", "exit_code": 1,
                         "message": f"worker {worker_id} ({self.devices[worker_id]}) died with exit code "
                                    f"{process.exitcode} while compressing this scene"}
                results.append(outcome(scenes[index], "failed", error=error))
                running.pop(index)
                pending.discard(index)
        if not any(p.is_alive() for p in self.processes):
            for index in sorted(pending):
                results.append(outcome(scenes[index], "not_started"))
            pending.clear()

    def in_progress(self) -> set[str]:
        """The scenes a worker is compressing now (``rel``)."""
        return {self.scenes[i].rel for i in list(self.running)}

    def join(self, timeout: float = 5.0) -> None:
        for process in self.processes:
            process.join(timeout)
        self.kill()

    def kill(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()
