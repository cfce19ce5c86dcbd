"""GPU encoder benchmark (issue 4): per-stage times, peak GPU memory, host RSS, bytes and errors.

Each scene runs in a fresh process that first warms up on small scenes of SH degree 1-3 (CUDA context, the
Triton kernel compiled for each SH dimension),
then compresses the benchmark PLY from local disk to a ``.sog`` in-process and prints one JSON line. The parent
collects them into a Markdown table (and bench/out/gpu.json). Optionally runs splat-transform's WebGPU path on the
same files for a side-by-side ratio (``--peer`` with $ST set by ../shared/tools/splat-transform-gpu.sh's env.sh).

    python bench/bench_gpu.py --scenes gen-1m-sh2 gen-4m-sh2 gen-4m-sh3 gen-10m-sh3 --presets fast balanced
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

OUT = Path(os.environ.get("BENCH_OUT", REPO / "bench" / "out"))


def peak_rss_bytes() -> int:
    """This process's own peak RSS (VmHWM resets at exec; ru_maxrss would include the forking parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class StageMemory:
    """Peak host RSS per pipeline stage: a 5 ms sampler thread, the stage named by the progress callback."""

    def __init__(self) -> None:
        import threading

        self.stage = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def progress(self, stage: str, fraction: float) -> None:
        self.stage = stage

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0), current_rss_bytes())
            self._stop.wait(0.005)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def worker(ply: Path, preset: str, device: str, verify: bool, precision: str | None) -> dict:
    import torch

    from sogs_compressor.quantize import assign_triton

    if precision:  # A/B of the k-means assignment's tensor-core precision (bench/NOTES-gpu.md)
        assign_triton.DEFAULT_PRECISION = precision

    from sogs_compressor.options import CompressOptions
    from sogs_compressor.pipeline import compress_file, compress_splats
    from sogs_compressor.sample import generate_scene

    with tempfile.TemporaryDirectory() as warm:  # CUDA context + Triton compile, not part of the measurement
        for degree in (1, 2, 3):  # the assignment kernel is compiled per SH dimension (9, 24, 45)
            compress_splats(generate_scene(70_000, sh_degree=degree, seed=5), warm, "warm",
                            CompressOptions(device=device, preset=preset, layout="bundle", verify=False,
                                            quality_check="off"))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    out = OUT / "gpu" / preset / ply.stem
    rss_before = current_rss_bytes()
    memory = StageMemory()
    start = time.perf_counter()
    result = compress_file(ply, out, CompressOptions(device=device, preset=preset, layout="bundle", verify=verify,
                                                     quality_check="off"), progress=memory.progress)
    wall = time.perf_counter() - start
    stage_rss = memory.stop()
    return {
        "scene": ply.stem, "preset": preset + (f" ({precision})" if precision else ""), "splats": result.counts["output"], "sh": result.sh_degree_out,
        "ply_bytes": ply.stat().st_size, "sog_bytes": result.output_bytes, "wall_in_process_s": wall,
        "stages": result.timings, "peak_gpu_bytes": result.peak_gpu_bytes,
        "peak_rss_bytes": peak_rss_bytes(), "rss_before_bytes": rss_before, "stage_peak_rss_bytes": stage_rss,
        "errors": result.errors, "device_name": result.device_name, "palette": result.palette_size,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=["gen-1m-sh2", "gen-4m-sh2", "gen-4m-sh3", "gen-10m-sh3"])
    parser.add_argument("--presets", nargs="+", default=["balanced"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--verify", action="store_true", help="also decode and measure errors (timed separately)")
    parser.add_argument("--peer", nargs="*", default=[], help="scenes to run splat-transform's GPU path on ($ST)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sogs-bench")
    parser.add_argument("--assign-precision", nargs="+", default=[""],
                        help="k-means assignment precisions to compare (assign_triton.PRECISIONS; default: its own)")
    parser.add_argument("--worker", nargs=2, metavar=("PLY", "PRESET"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        precision = args.assign_precision[0] or None
        print(json.dumps(worker(Path(args.worker[0]), args.worker[1], args.device, args.verify, precision)),
              flush=True)
        return 0

    from bench_codec import prepare_scenes_in_subprocess, run_measured

    t = time.perf_counter()
    scenes = prepare_scenes_in_subprocess(args.scenes, args.work)
    print(f"scenes ready in {time.perf_counter() - t:.1f} s", flush=True)
    rows = []
    for name, ply in scenes.items():
        for preset, precision in [(p, q) for p in args.presets for q in args.assign_precision]:
            command = [sys.executable, __file__, "--worker", str(ply), preset, "--device", args.device]
            if args.verify:
                command.append("--verify")
            if precision:
                command += ["--assign-precision", precision]
            run = run_measured(command, timeout=900)
            if run["rc"] != 0:
                print(f"{name}/{preset} failed: {run.get('stderr_tail')}", flush=True)
                rows.append({"scene": name, "preset": preset, "failed": run.get("stderr_tail")})
                continue
            row = json.loads(run["stdout"].strip().splitlines()[-1])
            row["process_wall_s"] = run["seconds"]
            rows.append(row)
            print(json.dumps(row), flush=True)
        if name in args.peer and os.environ.get("ST"):
            target = args.work / f"{name}.peer.sog"
            run = run_measured([*shlex.split(os.environ["ST"]), "-q", "-w", str(ply), str(target)], timeout=600)
            run.pop("stdout", None)
            if run["rc"] == 0:
                run["bytes"] = target.stat().st_size
            rows.append({"scene": name, "preset": "splat-transform (WebGPU)", "peer": run})
            print(json.dumps(rows[-1]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gpu.json").write_text(json.dumps(rows, indent=2))
    print(render(rows))
    return 0


def render(rows: list[dict]) -> str:
    stage_names = ["read", "sanitize", "order", "quantize", "kmeans", "sh_codebook", "codebook_wait", "webp_wait", "write", "verify"]
    lines = ["| scene | tool/preset | splats | PLY -> .sog s | process s | " + " | ".join(stage_names)
             + " | peak GPU GiB | RSS before GiB | peak RSS GiB | PLY MB | SOG MB |",
             "|---|---|--:|--:|--:|" + "--:|" * len(stage_names) + "--:|--:|--:|--:|--:|"]
    for r in rows:
        if "peer" in r:
            p = r["peer"]
            secs = "timeout" if p.get("timed_out") else f"{p['seconds']:.2f}" if p.get("rc") == 0 else "failed"
            size = f"{p['bytes'] / 1e6:.2f}" if p.get("bytes") else "-"
            rss = f"{p['rss_bytes'] / 2**30:.2f}" if p.get("rss_bytes") else "-"
            lines.append(f"| {r['scene']} | {r['preset']} | | | {secs} | " + " | ".join("" for _ in stage_names)
                         + f" | | | {rss} | | {size} |")
            continue
        if "failed" in r:
            lines.append(f"| {r['scene']} | {r['preset']} | failed |")
            continue
        stages = " | ".join(f"{r['stages'].get(s, 0):.2f}" for s in stage_names)
        encode = r["stages"].get("total", r["wall_in_process_s"]) - r["stages"].get("verify", 0.0)
        lines.append(f"| {r['scene']} | ours {r['preset']} | {r['splats']} | {encode:.2f} | "
                     f"{r['process_wall_s']:.2f} | {stages} | {(r['peak_gpu_bytes'] or 0) / 2**30:.2f} | "
                     f"{r.get('rss_before_bytes', 0) / 2**30:.2f} | "
                     f"{r['peak_rss_bytes'] / 2**30:.2f} | {r['ply_bytes'] / 1e6:.0f} | {r['sog_bytes'] / 1e6:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
