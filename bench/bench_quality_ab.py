"""The fast quality check on the CPU, this tree against a git revision, alternated in one run (a shared machine's
load moves between runs; alternating spreads it over both).

Each run is a fresh process that reads a real tiled scene and its decoded SOG (written once, quality check off),
then times ``quality_check(original, decoded, "fast", device=cpu)`` as the compressor runs it (2 orbit + 2
interior views at 256x256, both scenes). Wall and process CPU seconds are reported as medians, with the load
average; the renders and PSNR/SSIM figures of both sides are compared (largest pixel difference, figure changes).

    SOGS_REAL_DATA=/work/shared/data/real .venv/bin/python bench/bench_quality_ab.py --baseline main \\
        --scenes tile-guitar-300k-sh2 tile-guitar-1m-sh2 --rounds 3
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

OUT = REPO / "bench" / "out"


def baseline_tree(revision: str) -> Path:
    """``sogs_compressor`` as of ``revision``, unpacked under bench/out (the worktree is left alone)."""
    commit = subprocess.run(["git", "rev-parse", revision], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    tree = OUT / f"baseline-{commit[:12]}"
    if not (tree / "sogs_compressor").is_dir():
        archive = subprocess.run(["git", "archive", commit, "sogs_compressor"], cwd=REPO, capture_output=True,
                                 check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
    return tree


def decoded_scene(scene: Path) -> Path:
    """The scene compressed with the default settings (quality check and verification off): its ``.sog``."""
    out = OUT / "quality_ab" / scene.stem
    bundle = out / f"{scene.stem}.sog"
    if not bundle.exists():
        command = [sys.executable, "-m", "sogs_compressor", "compress", str(scene), "-o", str(out),
                   "--device", "cpu", "--quality-check", "off", "--no-verify"]
        subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    return bundle


def child(scene: Path, decoded: Path, save: Path) -> None:
    """One timed quality check in this process; the renders and figures go to ``save``."""
    import torch

    from sogs_compressor.device import configure_threads
    from sogs_compressor.read import read_scene
    from sogs_compressor.render import quality

    threads = configure_threads()
    original, compressed = read_scene(scene).splats, read_scene(decoded).splats
    cameras = quality.default_cameras(original, "fast")
    device = torch.device("cpu")
    renders = {}
    render_views = quality.render_views

    def keeping(splats, cams, *args, **kwargs):
        results = render_views(splats, cams, *args, **kwargs)
        renders["original" if splats is original else "decoded"] = results
        return results

    quality.render_views = keeping
    wall, cpu = time.perf_counter(), time.process_time()
    report = quality.quality_check(original, compressed, "fast", device=device, cameras=cameras)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    arrays = {f"{name}_{i}": r.image.numpy() for name, results in renders.items() for i, r in enumerate(results)}
    arrays |= {f"{name}_alpha_{i}": r.alpha.numpy() for name, results in renders.items()
               for i, r in enumerate(results)}
    np.savez(save, **arrays)
    figures = [{k: v.get(k) for k in ("psnr", "psnr_content", "ssim")} for v in report["views"]]
    print(json.dumps({"wall": wall, "cpu": cpu, "threads": threads, "figures": figures, "code": quality.__file__,
                      "pairs": [r.pairs for r in renders["original"]]}))


def run_child(tree: Path, scene: Path, decoded: Path, save: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    command = [sys.executable, __file__, "--child", str(scene), str(decoded), str(save)]
    load = os.getloadavg()[0]
    result = json.loads(subprocess.run(command, env=env, capture_output=True, text=True, check=True,
                                       cwd=tree).stdout.strip().splitlines()[-1])
    result["load"] = (load + os.getloadavg()[0]) / 2
    return result


def compare(a: Path, b: Path) -> float:
    """Largest absolute difference between two runs' renders (images and alphas)."""
    with np.load(a) as x, np.load(b) as y:
        return max(float(np.abs(x[k] - y[k]).max()) for k in x.files)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--scenes", nargs="+", default=["tile-guitar-300k-sh2", "tile-guitar-1m-sh2"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    # the script's folder is on sys.path; bench_codec puts the repository there too
    from bench_codec import prepare_scenes

    sides = {"before": baseline_tree(args.baseline), "after": REPO}
    rows = []
    for name, scene in prepare_scenes(args.scenes, OUT / "scenes").items():
        decoded = decoded_scene(scene)
        runs: dict[str, list[dict]] = {side: [] for side in sides}
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
            for side in order:
                save = OUT / "quality_ab" / f"{name}-{side}.npz"
                runs[side].append(run_child(sides[side], scene, decoded, save))
                print(name, side, f"wall {runs[side][-1]['wall']:.2f} s, cpu {runs[side][-1]['cpu']:.2f} s, "
                      f"load {runs[side][-1]['load']:.2f}", flush=True)
        before, after = runs["before"][-1], runs["after"][-1]
        psnr_change = max(abs(x[k] - y[k]) for x, y in zip(before["figures"], after["figures"], strict=True)
                          for k in ("psnr", "psnr_content") if x[k] is not None and y[k] is not None)
        ssim_change = max(abs(x["ssim"] - y["ssim"]) for x, y in zip(before["figures"], after["figures"],
                                                                     strict=True))
        row = {"scene": name, "threads": after["threads"], "rounds": args.rounds}
        for side in sides:
            row[f"{side}_wall"] = statistics.median(r["wall"] for r in runs[side])
            row[f"{side}_cpu"] = statistics.median(r["cpu"] for r in runs[side])
            row[f"{side}_pairs"] = runs[side][-1]["pairs"]
        row["load"] = [round(r["load"], 2) for side in sides for r in runs[side]]
        row["max_pixel_difference"] = compare(OUT / "quality_ab" / f"{name}-before.npz",
                                              OUT / "quality_ab" / f"{name}-after.npz")
        row["max_psnr_change_db"] = psnr_change
        row["max_ssim_change"] = ssim_change
        rows.append(row)
        print(json.dumps(row), flush=True)
    (OUT / "quality_ab.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
