"""The CPU path as users run it (issue 11): ``compress --device cpu``, default settings, a fresh process per run,
runs alternated between the tools so that a shared, noisy machine loads them alike.

Tools: this checkout; optionally another checkout (``--ref /path/to/main``: before/after on the same machine and
load) and splat-transform 3.7.0 ``-g cpu`` (``--peer``). ``--cores N`` pins every run to CPUs 0..N-1 (taskset),
which is also what our thread pools size themselves to (``cpus.usable_cpus``). Scenes: ``guitar`` (the real
guitar as it is stored, a compressed PLY), ``sample`` (the built-in ``generate_scene()``) or any
``bench_codec.prepare_scenes`` name (``tile-guitar-1m-sh2``: the real guitar tiled to 1M splats, SH 2).

    python bench/bench_cpu.py --scenes guitar tile-guitar-1m-sh2 --runs 3 --peer --cores 16 --json cpu.json
    python bench/bench_cpu.py --scenes guitar --runs 5 --ref /work/main     # before / after, alternated
    python bench/bench_cpu.py --ref . --ref-env SOGS_BACKGROUND_REFERENCE=0  # with / without the render overlap
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_codec import PEER, REAL, prepare_scenes_in_subprocess, run_measured  # noqa: E402

STAGES = ("read_background", "order", "quantize", "kmeans", "sh_codebook", "codebook_wait", "verify", "quality",
          "webp_wait", "write", "total")


def python_path(checkout: Path) -> str:
    """``checkout`` first, then whatever PYTHONPATH already held (dependencies installed to a --target folder)."""
    return os.pathsep.join(p for p in (str(checkout), os.environ.get("PYTHONPATH", "")) if p)


def pinned(command: list[str], cores: int | None) -> list[str]:
    return ["taskset", "-c", f"0-{cores - 1}", *command] if cores else command


def ours(checkout: Path, ply: Path, out: Path, cores: int | None, extra_env: dict | None = None) -> dict:
    """One fresh ``compress --device cpu --json`` of ``checkout``'s package: wall, peak RSS, stage times."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=python_path(checkout), **(extra_env or {}))
    command = [sys.executable, "-m", "sogs_compressor", "compress", str(ply), "-o", str(out), "--device", "cpu",
               "--json"]
    run = run_measured(pinned(command, cores), timeout=1800, env=env)
    stdout = run.pop("stdout", "")
    if run["rc"] == 0:
        result = json.loads(stdout)
        run["stages"] = {k: round(v, 3) for k, v in result["timings"].items()}
        run["bytes"] = result["output_bytes"]
    return run


def peer(ply: Path, out: Path, cores: int | None) -> dict:
    out.unlink(missing_ok=True)
    run = run_measured(pinned([str(PEER), "-g", "cpu", "-q", "-w", str(ply), str(out)], cores), timeout=1800)
    run.pop("stdout", None)
    if run["rc"] == 0:
        run["bytes"] = out.stat().st_size
    return run


def summary(runs: list[dict]) -> dict:
    """Wall seconds (min, median, max), peak RSS and the median of each stage over the successful runs."""
    good = [r for r in runs if r.get("rc") == 0]
    if not good:
        return {"failed": [r.get("stderr_tail", "")[-300:] for r in runs]}
    walls = [r["seconds"] for r in good]
    row = {"runs": len(good), "wall_min": min(walls), "wall_median": statistics.median(walls), "wall_max": max(walls),
           "rss_gib": max(r["rss_bytes"] for r in good) / 2**30, "bytes": good[-1].get("bytes")}
    if "stages" in good[0]:
        row["stages"] = {k: statistics.median(r["stages"].get(k, 0.0) for r in good) for k in STAGES
                         if any(k in r["stages"] for r in good)}
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=["guitar", "tile-guitar-1m-sh2"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cores", type=int, help="pin every run to CPUs 0..N-1")
    parser.add_argument("--ref", type=Path, help="another checkout to alternate with (e.g. main, for before/after)")
    parser.add_argument("--ref-env", nargs="*", default=[], metavar="KEY=VALUE",
                        help="environment of the --ref runs (e.g. --ref . --ref-env SOGS_BACKGROUND_REFERENCE=0)")
    parser.add_argument("--peer", action="store_true", help="also splat-transform 3.7.0 -g cpu")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sogs-bench")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    names = [n for n in args.scenes if n not in ("guitar", "sample")]
    scenes = prepare_scenes_in_subprocess(names, args.work) if names else {}
    if "guitar" in args.scenes:
        scenes["guitar"] = REAL / "guitar.compressed.ply"
    if "sample" in args.scenes:
        scenes["sample"] = args.work / "sample.ply"
        if not scenes["sample"].exists():
            code = ("import sys; from pathlib import Path; from sogs_compressor.sample import generate_scene; "
                    "from sogs_compressor.write.ply import write_ply; write_ply(generate_scene(), Path(sys.argv[1]))")
            run_measured([sys.executable, "-c", code, str(scenes["sample"])], 300,
                         env=dict(os.environ, PYTHONPATH=python_path(REPO)))
    tools = {"ours": lambda ply, out: ours(REPO, ply, out, args.cores)}
    if args.ref:
        ref_env = dict(item.split("=", 1) for item in args.ref_env)
        tools["ref"] = lambda ply, out: ours(args.ref.resolve(), ply, out, args.cores, ref_env)
    if args.peer:
        tools["splat-transform"] = lambda ply, out: peer(ply, out.with_suffix(".sog"), args.cores)
    out_dir = args.work / "cpu"
    report = {"machine": f"{platform.node()}, {os.cpu_count()} CPUs, pinned to {args.cores or 'all'}",
              "load_before": os.getloadavg(), "scenes": {}}
    for name, ply in scenes.items():
        runs: dict[str, list[dict]] = {tool: [] for tool in tools}
        for _ in range(args.runs):
            for tool, run in tools.items():  # alternated: tool A, tool B, tool A, ...
                runs[tool].append(run(ply, out_dir / f"{name}-{tool}"))
        report["scenes"][name] = {tool: summary(r) for tool, r in runs.items()}
        print(json.dumps({name: report["scenes"][name]}), flush=True)
    report["load_after"] = os.getloadavg()
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def render(report: dict) -> str:
    lines = [f"machine: {report['machine']}; load {report['load_before'][0]:.1f} -> {report['load_after'][0]:.1f}",
             "| scene | tool | runs | whole process min / median / max (s) | peak RSS (GiB) | bytes | stages "
             "(median s) |", "|---|---|--:|--:|--:|--:|---|"]
    for name, tools in report["scenes"].items():
        for tool, row in tools.items():
            if "failed" in row:
                lines.append(f"| {name} | {tool} | 0 | failed | | | |")
                continue
            stages = " ".join(f"{k}={v:.2f}" for k, v in (row.get("stages") or {}).items())
            lines.append(f"| {name} | {tool} | {row['runs']} | {row['wall_min']:.2f} / {row['wall_median']:.2f} / "
                         f"{row['wall_max']:.2f} | {row['rss_gib']:.2f} | {row['bytes']} | {stages} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
