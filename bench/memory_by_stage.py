"""Where a compress's host and GPU memory go, stage by stage, in this process (``--layout lod``: a Streamed SOG).

A thread samples this process's resident set (``/proc/self/status`` VmRSS) every few milliseconds and charges it
to the stage the progress callback last named; at each stage change the GPU's peak allocation so far is noted.
Budgets: a Streamed SOG of 10M splats at SH 3 within 16 GB of host and of GPU memory (issue 14); the single-file
path's host peak within 1.5 x the PLY's bytes + the process floor (issue 11).

    python bench/memory_by_stage.py --tile-scene 4000000 --device cuda --layout lod   # the guitar tiled to 4M, SH 3
    python bench/memory_by_stage.py --tile-scene 10000000 --device cuda --quality-check fast      # one .sog
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import torch

from sogs_compressor.options import CompressOptions
from sogs_compressor.pipeline import compress_file
from sogs_compressor.read import read_scene
from sogs_compressor.sample import tile_scene
from sogs_compressor.write.ply import write_ply

REAL = Path(os.environ.get("SOGS_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class StagePeaks:
    """The largest resident set seen while each stage ran, and the GPU's peak allocation when it ended."""

    def __init__(self, interval: float = 0.005) -> None:
        self.stage = "start"
        self.order: list[str] = ["start"]
        self.rss: dict[str, int] = {"start": rss_bytes()}
        self.gpu: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)

    def __enter__(self) -> StagePeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._note_gpu()

    def _sample(self, interval: float) -> None:
        while not self._stop.is_set():
            stage, value = self.stage, rss_bytes()
            self.rss[stage] = max(self.rss.get(stage, 0), value)
            time.sleep(interval)

    def _note_gpu(self) -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            self.gpu[self.stage] = int(torch.cuda.max_memory_allocated())

    def progress(self, stage: str, _fraction: float) -> None:
        if stage != self.stage:
            self._note_gpu()
            self.stage = stage
            if stage not in self.order:
                self.order.append(stage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", default=str(REAL / "guitar.compressed.ply"))
    parser.add_argument("--tile-scene", type=int, default=None, metavar="N")
    parser.add_argument("--device", default=None)
    parser.add_argument("--quality-check", default="off")
    parser.add_argument("--layout", default="bundle")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scene = Path(args.scene)
        if args.tile_scene:
            scene = Path(tmp) / "tiled.ply"
            write_ply(tile_scene(read_scene(args.scene).splats, args.tile_scene, seed=1, sh_degree=3), scene)
        options = CompressOptions(layout=args.layout, device=args.device, quality_check=args.quality_check, viewer="off")
        started = time.perf_counter()
        with StagePeaks() as peaks:
            result = compress_file(scene, Path(tmp) / "out", options, progress=peaks.progress)
        gib = 2**30
        print(json.dumps({
            "scene": scene.name, "input_bytes": scene.stat().st_size, "seconds": round(time.perf_counter() - started, 2),
            "timings": {k: round(v, 2) for k, v in result.timings.items()},
            "peak_rss_gib_by_stage": {s: round(peaks.rss.get(s, 0) / gib, 3) for s in peaks.order},
            "gpu_peak_gib_at_stage_end": {s: round(v / gib, 3) for s, v in peaks.gpu.items()},
            "layout": args.layout, "bytes": sum(f.bytes for f in result.output_files),
            "chunks": (result.lod or {}).get("chunks"), "levels": result.counts.get("levels"),
        }, indent=1))


if __name__ == "__main__":
    main()
