"""Codec benchmark: sogs-compressor vs PlayCanvas splat-transform 3.7.0 on the same machine, in one run.

For every scene: wall time, peak RSS, output bytes, and the per-attribute errors of both outputs against the
input, both decoded with our decoder: ours with exact correspondence (its Morton order recomputed), the
peer's with each decoded splat matched to the input splat nearest in position (it writes its own order). Prints a Markdown table; full numbers go to bench/out/codec.json.

    .venv/bin/python bench/bench_codec.py                    # shared real scenes + generated 100K and 1M SH3
    .venv/bin/python bench/bench_codec.py --scenes guitar --presets fast balanced max
Needs scipy (bench only) and the peer in .peer/ (scripts/test.sh installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sogs_compressor.read import read_scene  # noqa: E402
from sogs_compressor.sample import tile_scene  # noqa: E402
from sogs_compressor.splats import SplatSet  # noqa: E402
from sogs_compressor.verify.metrics import attribute_errors  # noqa: E402
from sogs_compressor.write.ply import write_ply  # noqa: E402

REAL = Path(os.environ.get("SOGS_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
PEER = REPO / ".peer" / "node_modules" / ".bin" / "splat-transform"
OUT = REPO / "bench" / "out"
PEER_TIMEOUT = 600


def run_measured(command: list[str], timeout: float, env: dict | None = None) -> dict:
    """Run a command; wall seconds, peak RSS of that child (bytes), exit code; None times on timeout."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            return {"seconds": None, "timed_out": True, "rss_bytes": None, "rc": None}
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    output = proc.stdout.read().decode(errors="replace")
    errors = proc.stderr.read().decode(errors="replace")
    return {"seconds": seconds, "timed_out": False, "rss_bytes": usage.ru_maxrss * 1024,
            "rc": os.waitstatus_to_exitcode(status), "stdout": output, "stderr_tail": errors[-2000:]}


def matched_errors(reference: SplatSet, output_path: Path) -> dict:
    """Errors of another tool's output: decode it, match each decoded splat to the input splat nearest in
    position (each tool writes its own order), and measure. Near-duplicate positions can mismatch a few
    splats (``matched_unique_fraction`` < 1), which only makes that tool's errors look larger."""
    from scipy.spatial import cKDTree

    decoded = read_scene(output_path).splats
    tree = cKDTree(reference.positions.astype(np.float64))
    _, index = tree.query(decoded.positions.astype(np.float64), k=1, workers=-1)
    errors = attribute_errors(reference.take(index), decoded)
    errors["matched_unique_fraction"] = len(np.unique(index)) / decoded.count
    errors["decoded_count"] = decoded.count
    return errors


def our_errors(reference: SplatSet, output_path: Path) -> dict:
    """Errors of our output with exact correspondence: our order is the Morton order of the input, recomputed
    here the way the encoder does it (the benchmark scenes hold no invalid values, so nothing is dropped)."""
    from sogs_compressor.order.morton import morton_order

    decoded = read_scene(output_path).splats
    errors = attribute_errors(reference.take(morton_order(reference.positions)), decoded)
    errors["matched_unique_fraction"] = 1.0
    errors["decoded_count"] = decoded.count
    return errors


def rematch(rows: list[dict]) -> None:
    """Recompute the errors of the outputs of an earlier run (bench/out/codec.json) with the current matcher."""
    work = OUT / "scenes"
    for row in rows:
        reference = read_scene(work / f"{row['scene']}.ply").splats
        for key, run in row.items():
            if not isinstance(run, dict) or run.get("rc") != 0:
                continue
            path = (OUT / "peer" / f"{row['scene']}.sog" if key == "peer"
                    else OUT / "ours" / key.removeprefix("ours_") / row["scene"] / f"{row['scene']}.sog")
            if path.exists():
                run["errors"] = (matched_errors if key == "peer" else our_errors)(reference, path)


def parse_generated(name: str) -> tuple[int, int]:
    """``gen-100k-sh3`` -> (100000, 3): a scene tiled from the real flowers scene (also the size and SH of
    ``tile-SOURCE-100k-sh3``, tiled from the real scene SOURCE: guitar or flowers)."""
    size, sh = name.split("-")[-2:]
    multiplier = {"k": 1_000, "m": 1_000_000}[size[-1]]
    return int(float(size[:-1]) * multiplier), int(sh.removeprefix("sh"))


def prepare_scenes(names: list[str], work: Path) -> dict[str, Path]:
    """Write each benchmark scene as a float PLY (the common input of both tools)."""
    work.mkdir(parents=True, exist_ok=True)
    scenes: dict[str, Path] = {}
    flowers = None
    if REAL.is_dir():
        flowers = read_scene(REAL / "flowers_3_0" / "meta.json").splats
    for name in names:
        path = work / f"{name}.ply"
        if not path.exists():
            if name == "guitar":
                write_ply(read_scene(REAL / "guitar.compressed.ply").splats, path)
            elif name == "flowers_3_0":
                write_ply(flowers, path)
            elif name.startswith("gen-"):
                count, degree = parse_generated(name)
                write_ply(tile_scene(flowers, count, seed=1, sh_degree=degree), path)
            elif name.startswith(("tile-guitar-", "tile-flowers-")):
                count, degree = parse_generated(name)
                source = (read_scene(REAL / "guitar.compressed.ply").splats if name.startswith("tile-guitar-")
                          else flowers)
                write_ply(tile_scene(source, count, seed=1, sh_degree=degree), path)
        scenes[name] = path
    return scenes


def prepare_scenes_in_subprocess(names: list[str], work: Path) -> dict[str, Path]:
    """prepare_scenes in a child process, so this one stays small: a child forked from a large parent starts
    with the parent's RSS in its ru_maxrss, which would inflate the peak-memory figures of the tools measured."""
    command = [sys.executable, __file__, "--prepare-only", "--work", str(work), "--scenes", *names]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {k: Path(v) for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=["guitar", "flowers_3_0", "gen-100k-sh3", "gen-1m-sh3"])
    parser.add_argument("--presets", nargs="+", default=["balanced"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--peer-scenes", nargs="*", default=None,
                        help="run splat-transform only on these scenes (default: all); a saved result "
                             "bench/out/peer/NAME.json from an earlier capped run is reused for the others")
    parser.add_argument("--peer-gpu", action="store_true", help="let splat-transform use its GPU path")
    parser.add_argument("--work", type=Path, default=OUT / "scenes")
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rematch", action="store_true",
                        help="only recompute the errors of bench/out/codec.json's outputs and reprint the table")
    args = parser.parse_args()
    if args.rematch:
        saved = json.loads((OUT / "codec.json").read_text())
        rematch(saved["rows"])
        (OUT / "codec.json").write_text(json.dumps(saved, indent=2))
        print(render_table(saved["rows"], args.presets, saved["machine"]))
        return 0
    if args.prepare_only:
        print(json.dumps({k: str(v) for k, v in prepare_scenes(args.scenes, args.work).items()}))
        return 0
    if not REAL.is_dir():
        print(f"needs the shared real scenes at {REAL}", file=sys.stderr)
        return 2

    scenes = prepare_scenes_in_subprocess(args.scenes, args.work)
    rows = []
    for name, ply in scenes.items():
        entry = {"scene": name, "ply_bytes": ply.stat().st_size}
        outputs = []
        for preset in args.presets:
            out = OUT / "ours" / preset / name
            run = run_measured([sys.executable, "-m", "sogs_compressor", "compress", str(ply), "-o", str(out),
                                "--layout", "bundle", "--preset", preset, "--device", args.device, "--no-verify",
                                "--json"], timeout=3600)
            sog = out / f"{name}.sog"
            if run["rc"] == 0:
                result = json.loads(run.pop("stdout"))
                run["stages"] = result["timings"]
                run["peak_gpu_bytes"] = result["peak_gpu_bytes"]
                run["device_name"] = result["device_name"]
                run["bytes"] = sog.stat().st_size
                outputs.append((run, sog, our_errors))
            entry[f"ours_{preset}"] = run
            print(f"{name} ours/{preset}: {run.get('seconds')} s, {run.get('bytes')} bytes", flush=True)
        saved = OUT / "peer" / f"{name}.json"
        if args.peer_scenes is not None and name not in args.peer_scenes and saved.exists():
            entry["peer"] = json.loads(saved.read_text())
            entry["peer"]["reused_from"] = str(saved.relative_to(REPO))
        elif not args.no_peer and PEER.exists():
            target = OUT / "peer" / f"{name}.sog"
            target.parent.mkdir(parents=True, exist_ok=True)
            command = [str(PEER), "-q", "-w", str(ply), str(target)]
            if not args.peer_gpu:
                command[1:1] = ["-g", "cpu"]
            run = run_measured(command, timeout=PEER_TIMEOUT)
            run.pop("stdout", None)
            if run["rc"] == 0:
                run["bytes"] = target.stat().st_size
                outputs.append((run, target, matched_errors))
            entry["peer"] = run
            print(f"{name} splat-transform: {run.get('seconds')} s, {run.get('bytes')} bytes", flush=True)
        reference = read_scene(ply).splats  # read after the timed runs: see prepare_scenes_in_subprocess
        entry.update(splats=reference.count, sh=reference.sh_degree)
        for run, path, measure in outputs:
            run["errors"] = measure(reference, path)
        del reference
        rows.append(entry)

    machine = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "codec.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print(render_table(rows, args.presets, machine))
    return 0


def _fmt_run(run: dict | None) -> tuple[str, str, str]:
    if not run:
        return "-", "-", "-"
    if run.get("timed_out"):
        return f"> {PEER_TIMEOUT} s", "-", "-"
    if run.get("rc") != 0:
        return f"failed ({run.get('rc')})", "-", "-"
    return f"{run['seconds']:.1f} s", f"{run['rss_bytes'] / 2**20:.0f} MiB", f"{run['bytes'] / 1e6:.3f} MB"


def render_table(rows: list[dict], presets: list[str], machine: str) -> str:
    lines = [f"Machine: {machine}", "",
             "| scene | splats | SH | tool | time | peak RSS | bytes | pos rel median | rot deg median | f_dc rmse "
             "| opacity mae | log-scale rmse | f_rest rmse |",
             "|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for row in rows:
        tools = [(f"ours ({p})", row.get(f"ours_{p}")) for p in presets] + [("splat-transform", row.get("peer"))]
        for tool, run in tools:
            if run is None:
                continue
            t, rss, size = _fmt_run(run)
            e = run.get("errors") or {}
            errs = [f"{e[k]:.2e}" if k in e else "-" for k in (
                "position_rel_median", "rotation_deg_median", "f_dc_rmse", "opacity_mae", "log_scale_rmse",
                "f_rest_rmse")]
            lines.append(f"| {row['scene']} | {row['splats']} | {row['sh']} | {tool} | {t} | {rss} | {size} | "
                         + " | ".join(errs) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
