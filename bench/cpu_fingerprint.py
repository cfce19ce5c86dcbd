"""Same bytes, same figures: a fingerprint of what ``compress --device cpu`` writes, to compare before/after a
speed change (issue 11: the speed work must not change the output).

For each scene: one fresh ``sogs-compressor compress SCENE -o OUT --device cpu --json`` (default settings), the
sha256 of every file written (the viewer page embeds the report, timings included, so it is listed apart), the
quality check's per-view figures and the per-attribute errors. ``--compare OLD.json`` prints every difference
(files, and figures beyond ``--tolerance-db``) and exits 1 when there is one.

Scenes: ``guitar`` (the real guitar, skipped without /work/shared/data/real), ``sample`` (the built-in
``generate_scene()``), ``tile-guitar-300k-sh2`` (``sample.tile_scene`` over the guitar), or any
``bench_codec.prepare_scenes`` name.

    python bench/cpu_fingerprint.py --json /tmp/before.json
    python bench/cpu_fingerprint.py --compare /tmp/before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

DEFAULT_SCENES = ["guitar", "sample", "tile-guitar-300k-sh2"]
VARYING = (".html",)
"""Files that embed the report's timings: listed, not compared."""


def scene_path(name: str, work: Path) -> Path:
    """The scene's PLY in ``work`` (written once)."""
    if name == "sample":
        path = work / "sample.ply"
        if not path.exists():
            from sogs_compressor.sample import generate_scene
            from sogs_compressor.write.ply import write_ply

            write_ply(generate_scene(), path)
        return path
    from bench_codec import prepare_scenes

    return prepare_scenes([name], work)[name]


def fingerprint(ply: Path, out: Path, extra: list[str]) -> dict:
    """One fresh compress of ``ply`` into ``out``: file hashes, quality figures, errors, wall seconds."""
    command = [sys.executable, "-m", "sogs_compressor", "compress", str(ply), "-o", str(out), "--device", "cpu",
               "--json", *extra]
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"{ply.name}: exit {run.returncode}\n{run.stderr[-2000:]}")
    result = json.loads(run.stdout)
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if p.is_file()}
    quality = result.get("quality") or {}
    return {
        "files": {k: v for k, v in files.items() if not k.endswith(VARYING)},
        "varying": sorted(k for k in files if k.endswith(VARYING)),
        "views": [{k: v[k] for k in ("camera", "psnr", "psnr_content", "ssim")} for v in quality.get("views", [])],
        "errors": result.get("errors"),
        "wall_s": round(seconds, 3),
        "timings": {k: round(v, 3) for k, v in result["timings"].items()},
    }


def differences(old: dict, new: dict, tolerance_db: float) -> list[str]:
    """What changed between two fingerprints of the same scene."""
    found = []
    for name in sorted(set(old["files"]) | set(new["files"])):
        if old["files"].get(name) != new["files"].get(name):
            found.append(f"file {name}: {old['files'].get(name)} -> {new['files'].get(name)}")
    if len(old["views"]) != len(new["views"]):
        found.append(f"views: {len(old['views'])} -> {len(new['views'])}")
    for a, b in zip(old["views"], new["views"], strict=False):
        for key in ("psnr", "psnr_content"):
            one_missing = (a[key] is None) != (b[key] is None)
            if one_missing or (a[key] is not None and b[key] is not None and abs(a[key] - b[key]) > tolerance_db):
                found.append(f"view {a['camera']} {key}: {a[key]} -> {b[key]}")
        if abs(a["ssim"] - b["ssim"]) > 1e-5:
            found.append(f"view {a['camera']} ssim: {a['ssim']} -> {b['ssim']}")
    if json.dumps(old["errors"], sort_keys=True) != json.dumps(new["errors"], sort_keys=True):
        found.append("per-attribute errors differ")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=DEFAULT_SCENES)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sogs-fingerprint")
    parser.add_argument("--json", type=Path, help="write the fingerprints here")
    parser.add_argument("--compare", type=Path, help="fingerprints written earlier: print what differs")
    parser.add_argument("--tolerance-db", type=float, default=1e-4)
    parser.add_argument("extra", nargs="*", help="more compress options (after --)")
    args = parser.parse_args()

    from bench_codec import REAL

    args.work.mkdir(parents=True, exist_ok=True)
    report = {}
    for name in args.scenes:
        if (name == "guitar" or name.startswith("tile-")) and not REAL.is_dir():
            print(f"{name}: skipped, no real scenes at {REAL}")
            continue
        ply = REAL / "guitar.compressed.ply" if name == "guitar" else scene_path(name, args.work)
        report[name] = fingerprint(ply, args.work / f"{name}.out", args.extra)
        print(json.dumps({"scene": name, "wall_s": report[name]["wall_s"], "timings": report[name]["timings"]}),
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.compare:
        old = json.loads(args.compare.read_text())
        changed = False
        for name, new in report.items():
            if name not in old:
                print(f"{name}: not in {args.compare}")
                continue
            found = differences(old[name], new, args.tolerance_db)
            changed |= bool(found)
            print(f"{name}: " + ("identical" if not found else "\n  ".join(["DIFFERENT", *found])))
        return 1 if changed else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
