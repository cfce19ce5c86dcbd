"""What users get: the default settings, whole process, on real scenes tiled to size, beside splat-transform 3.7.0.

For each scene (a real trained scene tiled to size, ``bench_codec.prepare_scenes``):
  ours cold      ``sogs-compressor compress SCENE -o OUT --json`` in a fresh process (verification and the fast quality
                 check on: the defaults), wall time and peak RSS of the process, its stage times, GPU peak, bytes;
  splat-transform  its CLI (WebGPU when $ST points at the GPU build from ../shared/tools/splat-transform-gpu.sh,
                 else the npm install in .peer/), wall time, peak RSS, bytes;
then the SageMaker job entrypoint once over all scenes as a batch (a local /opt/ml tree): per-scene times from
its reports (warm: after the first scene the process, CUDA and the kernels are up). Optional extras: the same
cold run with Triton made unimportable (the chunked PyTorch paths that cards below compute capability 8.0 use),
and a CPU-only run.

    python bench/bench_e2e.py --scenes tile-guitar-1m-sh2 tile-guitar-4m-sh2 tile-flowers-4m-sh3 --job \
        --no-triton tile-guitar-4m-sh2 --cpu tile-guitar-1m-sh2 --json bench/out/e2e.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

from bench_codec import PEER, prepare_scenes_in_subprocess, run_measured  # noqa: E402

NO_TRITON = "import sys; sys.modules['triton'] = None; from sogs_compressor.cli import run; sys.argv[0] = 'sogs'; run()"


def ours(ply: Path, out: Path, extra: list[str], no_triton: bool = False, timeout: float = 900,
         triton_cache: Path | None = None) -> dict:
    """Our CLI in a fresh process with default settings (plus ``extra``); ``triton_cache``: an empty folder for
    Triton's compiled kernels (a machine's first run)."""
    shutil.rmtree(out, ignore_errors=True)
    launcher = [sys.executable, "-c", NO_TRITON] if no_triton else [sys.executable, "-m", "sogs_compressor"]
    env = dict(os.environ, TRITON_CACHE_DIR=str(triton_cache)) if triton_cache else None
    run = run_measured([*launcher, "compress", str(ply), "-o", str(out), "--json", *extra], timeout, env=env)
    if run["rc"] == 0:
        result = json.loads(run.pop("stdout"))
        quality = result.get("quality") or {}
        run.update(stages=result["timings"], bytes=result["output_bytes"], peak_gpu_bytes=result["peak_gpu_bytes"],
                   device=result["device_name"], psnr=(quality.get("summary") or {}).get("psnr_content", {}).get("mean"),
                   psnr_by_kind={kind: k["psnr_content"]["mean"] for kind, k in (quality.get("by_kind") or {}).items()})
    return run


def prime_kernel_cache(scenes: dict[str, Path], out: Path) -> None:
    """Compile every kernel the timed runs use into Triton's cache (a small scene of each SH degree, compressed
    with the defaults in a fresh process), so that "whole process" is a new process on a machine that has run the
    tool before (a CLI user's second run; a job after its first scene). ``--empty-cache`` measures the first run."""
    from sogs_compressor.read.ply import sh_rest_count_hint
    from sogs_compressor.sample import generate_scene
    from sogs_compressor.splats import sh_degree_for_rest_count
    from sogs_compressor.write.ply import write_ply

    degrees = sorted({sh_degree_for_rest_count(sh_rest_count_hint(ply) or 0) for ply in scenes.values()})
    for degree in degrees:
        ply = out / f"prime-sh{degree}.ply"
        ply.parent.mkdir(parents=True, exist_ok=True)
        write_ply(generate_scene(20_000, sh_degree=degree, seed=0), ply)
        run = ours(ply, out / f"sh{degree}", [])
        print(json.dumps({"primed_sh_degree": degree, "seconds": run["seconds"], "rc": run["rc"]}), flush=True)


def peer(ply: Path, out: Path) -> dict:
    command = shlex.split(os.environ["ST"]) if os.environ.get("ST") else [str(PEER), "-g", "cpu"]
    run = run_measured([*command, "-q", "-w", str(ply), str(out)], timeout=900)
    run.pop("stdout", None)
    if run["rc"] == 0:
        run["bytes"] = out.stat().st_size
    run["tool"] = "splat-transform (WebGPU)" if os.environ.get("ST") else "splat-transform"
    return run


def job_batch(scenes: dict[str, Path], work: Path, device: str) -> dict:
    """compress_model.py over all scenes in one process: wall time and each scene's report."""
    from s3server import job_env, opt_ml_tree

    root = opt_ml_tree(work / "ml")
    inputs = root / "processing/input/scenes"
    inputs.mkdir(parents=True, exist_ok=True)
    for name, ply in scenes.items():  # the job skips symbolic links: a hard link (or a copy) instead
        try:
            os.link(ply, inputs / f"{name}.ply")
        except OSError:
            shutil.copyfile(ply, inputs / f"{name}.ply")
    env = job_env(root, SOGS_DEVICE=device, LOG_FORMAT="json")
    run = run_measured([sys.executable, str(REPO / "compress_model.py"), "--layout", "bundle"], 1800, env=env)
    per_scene = {}
    for name in scenes:
        report_path = root / "processing/output/sog" / name / "compression_report.json"
        if report_path.exists():
            report = json.loads(report_path.read_text())
            per_scene[name] = {"timings": report.get("timings_s"), "bytes": sum(
                o["bytes"] for o in report.get("outputs", []) if o["name"].endswith(".sog"))}
    return {"rc": run["rc"], "wall_s": run["seconds"], "peak_rss_bytes": run["rss_bytes"], "scenes": per_scene,
            "stderr_tail": run.get("stderr_tail", "")[-500:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=["tile-guitar-1m-sh2", "tile-guitar-4m-sh2",
                                                        "tile-flowers-4m-sh3"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sogs-bench")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--job", action="store_true", help="also run the SageMaker job over the scenes as a batch")
    parser.add_argument("--device", default="cuda", help="the job's device")
    parser.add_argument("--no-triton", nargs="*", default=[], metavar="SCENE",
                        help="also run these scenes with Triton unimportable (the no-kernel paths)")
    parser.add_argument("--cpu", nargs="*", default=[], metavar="SCENE", help="also run these with --device cpu")
    parser.add_argument("--empty-cache", nargs="*", default=[], metavar="SCENE",
                        help="also run these with an empty Triton kernel cache (a fresh machine's first run)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-prime", action="store_true",
                        help="do not fill Triton's kernel cache first (the first timed run then compiles)")
    args = parser.parse_args()

    scenes = prepare_scenes_in_subprocess(args.scenes, args.work)
    out = args.work / "e2e"
    if not args.no_prime:
        prime_kernel_cache(scenes, out / "prime")
    rows = []
    for name, ply in scenes.items():
        row = {"scene": name, "ply_bytes": ply.stat().st_size, "ours": ours(ply, out / name, [])}
        if not args.no_peer:
            row["peer"] = peer(ply, out / f"{name}.peer.sog")
        if name in args.no_triton:
            row["ours_no_triton"] = ours(ply, out / f"{name}-nt", [], no_triton=True)
        if name in args.empty_cache:
            row["ours_empty_cache"] = ours(ply, out / f"{name}-ec", [],
                                           triton_cache=Path(tempfile.mkdtemp(prefix="triton-")))
        if name in args.cpu:
            row["ours_cpu"] = ours(ply, out / f"{name}-cpu", ["--device", "cpu"], timeout=1800)
        rows.append(row)
        print(json.dumps({k: ({kk: vv for kk, vv in v.items() if kk != "stderr_tail"} if isinstance(v, dict) else v)
                          for k, v in row.items()}), flush=True)
    report = {"machine": f"{platform.node()}, {os.cpu_count()} cores", "rows": rows}
    if args.job:
        report["job"] = job_batch(scenes, Path(tempfile.mkdtemp(prefix="e2e-job-")), args.device)
        print(json.dumps(report["job"]), flush=True)
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def render(report: dict) -> str:
    """The headline table: seconds (whole process) and bytes, ours against splat-transform's."""
    lines = ["| scene | ours, whole process | splat-transform | speed-up | ours in the job (warm) | our bytes / theirs "
             "| peak RSS ours / theirs (GiB) | GPU peak (GiB) | quality check (s) | content PSNR dB by view kind |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--|"]
    job = (report.get("job") or {}).get("scenes", {})
    for row in report["rows"]:
        o, p = row["ours"], row.get("peer") or {}
        ours_s = o.get("seconds") if o.get("rc") == 0 else None
        peer_s = p.get("seconds") if p.get("rc") == 0 else None
        in_job = (job.get(row["scene"]) or {}).get("timings") or {}
        cells = [row["scene"], f"{ours_s:.2f} s" if ours_s else f"failed ({o.get('rc')})",
                 f"{peer_s:.2f} s" if peer_s else "-", f"{peer_s / ours_s:.1f}x" if ours_s and peer_s else "-",
                 f"{in_job['total']:.2f} s" if "total" in in_job else "-",
                 f"{o['bytes'] / p['bytes']:.3f}" if o.get("bytes") and p.get("bytes") else "-",
                 f"{o.get('rss_bytes', 0) / 2**30:.2f} / {p.get('rss_bytes', 0) / 2**30:.2f}" if p else "-",
                 f"{o.get('peak_gpu_bytes', 0) / 2**30:.2f}",
                 f"{o['stages']['quality']:.2f}" if "quality" in (o.get("stages") or {}) else "-",
                 ", ".join(f"{kind} {db:.2f}" for kind, db in (o.get("psnr_by_kind") or {}).items()) or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
