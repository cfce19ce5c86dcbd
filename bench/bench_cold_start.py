"""First-scene latency of a fresh process (what a one-scene SageMaker job or a CLI run pays), on a GPU.

Each run is a new Python process with an empty Triton cache (TRITON_CACHE_DIR in a new temp folder), so the
CUDA start-up and every kernel compile fall inside the measurement, as in a new container. Prints, per run:
import time, PLY -> .sog wall time (verification and quality check off) and the stage times.

    python3 bench/bench_cold_start.py /tmp/sogs-bench/gen-1m-sh2.ply --runs 2 [--tree OTHER_CHECKOUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, tempfile, time
t0 = time.perf_counter()
from sogs_compressor.options import CompressOptions
from sogs_compressor.pipeline import compress_file
t1 = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    result = compress_file(sys.argv[1], out, CompressOptions(device=sys.argv[2], verify=False, quality_check="off"))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "compress_s": t2 - t1, "stages": result.timings,
                  "bytes": result.output_bytes}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ply", type=Path)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose code runs (default: this one)")
    args = parser.parse_args()
    tree = args.tree.resolve()
    env_path = os.pathsep.join(p for p in (str(tree), os.environ.get("PYTHONPATH", "")) if p)
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, PYTHONPATH=env_path, TRITON_CACHE_DIR=cache)
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD, str(args.ply), args.device], env=env, cwd=tree,
                                  capture_output=True, text=True, timeout=600)
            wall = time.perf_counter() - started
        if proc.returncode != 0:
            print(f"run {run}: failed: {proc.stderr[-1500:]}")
            return 1
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        stages = ", ".join(f"{k} {v:.2f}" for k, v in row["stages"].items())
        print(f"{tree.name} run {run}: process {wall:.2f} s, import {row['import_s']:.2f} s, "
              f"PLY -> .sog {row['compress_s']:.2f} s, {row['bytes']} B; {stages}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
