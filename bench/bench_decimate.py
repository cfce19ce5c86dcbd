"""Decimation against splat-transform 3.7.0: wall time and rendered quality at the same splat count.

Ours runs in this process (``lod.decimate``, the time excludes reading the file); splat-transform runs as its CLI
(``--decimate N``, uniform: its default) on the same input, its time is the whole command (Node start-up and
reading included; ``-g cpu`` unless ``--st-gpu`` is given). Both outputs are rendered from the same orbit
cameras as the original and compared (content PSNR, the quality check's measure); a random subset of the same
size is the floor. Each ``--to`` level is cut from the input (as ``--decimate`` does).

    python bench/bench_decimate.py                                    # guitar, 50%, --device auto
    python bench/bench_decimate.py --to 50% 25% 12.5% --device cpu    # the pyramid's levels, each from the input
    python bench/bench_decimate.py --scene SCENE.ply --to 25% --device cuda --views 8 --size 512
    python bench/bench_decimate.py --tile-scene 4000000 --device cuda --st-gpu 0      # guitar tiled to 4M, SH 3
    python bench/bench_decimate.py --tile-scene 10000000 --device cuda --skip-st --skip-quality  # memory at 10M

On CUDA each level's ``peak_device_gb`` is ``torch.cuda.max_memory_allocated`` over that decimation alone (the
peak is reset after the warm-up and before each level).
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sogs_compressor.device import device_name, resolve_device
from sogs_compressor.lod.cli import target_count
from sogs_compressor.lod.decimate import decimate
from sogs_compressor.read import read_scene
from sogs_compressor.render.quality import default_cameras, quality_check, render_views
from sogs_compressor.sample import tile_scene
from sogs_compressor.splats import COLUMNS
from sogs_compressor.write.ply import write_ply

REPO = Path(__file__).resolve().parents[1]
GUITAR = REPO.parent / "shared" / "data" / "real" / "guitar.compressed.ply"
SPLAT_TRANSFORM = REPO / ".peer" / "node_modules" / ".bin" / "splat-transform"


def content_psnr(original, candidate, cameras, reference, device) -> float:
    report = quality_check(original, candidate, "fast", device, cameras=cameras, reference=reference)
    return report["summary"]["psnr_content"]["mean"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", default=str(GUITAR), help="input scene (default: the shared guitar)")
    parser.add_argument("--to", nargs="+", default=["50%"],
                        help="splats to keep, N or P%%, one or more levels (default 50%%; pyramid: 50%% 25%% 12.5%%)")
    parser.add_argument("--device", default=None, help="our device (default auto)")
    parser.add_argument("--st-gpu", default="cpu", help="splat-transform's -g value (default cpu)")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile-scene", type=int, default=None, metavar="N",
                        help="tile the scene to N splats at SH degree 3 (sample.tile_scene) first")
    parser.add_argument("--skip-st", action="store_true", help="do not run splat-transform")
    parser.add_argument("--skip-quality", action="store_true", help="no renders (time and memory only)")
    parser.add_argument("--check-determinism", action="store_true",
                        help="decimate a second time and require identical arrays (the GPU check)")
    parser.add_argument("--st-command", default=str(SPLAT_TRANSFORM),
                        help="splat-transform's command line (default: the npm peer in .peer/; on the GPU machine "
                             "the packed one: $ST of .peer-gpu/env.sh)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    splats = read_scene(args.scene).splats
    tmp = tempfile.TemporaryDirectory()
    scene_path = args.scene
    if args.tile_scene:
        splats = tile_scene(splats, args.tile_scene, seed=1, sh_degree=3)
        scene_path = str(Path(tmp.name) / "tiled.ply")
        write_ply(splats, scene_path)

    decimate(splats.take(np.arange(min(splats.count, 2000))), 1000, device=device)  # warm-up (kernels, allocator)
    render_device = resolve_device(args.device)
    cameras = reference = None
    if not args.skip_quality:
        cameras = default_cameras(splats, "fast", args.views, args.size)
        reference = render_views(splats, cameras, render_device)
    rng = np.random.default_rng(args.seed)
    for to in args.to:
        target = target_count(to, splats.count)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        ours = decimate(splats, target, device=device, seed=args.seed)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        ours_seconds = time.perf_counter() - started
        peak_device_gb = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        peak_host_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # whole process so far (KiB)

        identical = None
        if args.check_determinism:
            again = decimate(splats, target, device=device, seed=args.seed)
            identical = all(np.array_equal(getattr(ours, name), getattr(again, name)) for name in COLUMNS)
            del again

        theirs, st_seconds = None, None
        if not args.skip_st:
            out = Path(tmp.name) / "st.ply"
            command = [*shlex.split(args.st_command), "-q", "-w", "-g", args.st_gpu, scene_path, "--decimate",
                       str(target), str(out)]
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            st_seconds = time.perf_counter() - started
            theirs = read_scene(out).splats

        def psnr(candidate):
            if args.skip_quality:
                return None
            return content_psnr(splats, candidate, cameras, reference, render_device)

        random_subset = splats.take(np.sort(rng.choice(splats.count, target, replace=False)))
        row = {
            "scene": Path(args.scene).name, "input": splats.count, "to": to, "target": target,
            "device": device_name(device), "torch_threads": torch.get_num_threads(),
            "ours": {"count": ours.count, "seconds": round(ours_seconds, 2),
                     "peak_device_gb": peak_device_gb and round(peak_device_gb, 3),
                     "peak_device_bytes_per_input_splat": peak_device_gb and round(peak_device_gb * 2**30 / splats.count),
                     "peak_host_rss_gb": round(peak_host_gb, 3), "identical_when_repeated": identical,
                     "psnr_content": psnr(ours)},
            "splat_transform": theirs and {
                "count": theirs.count, "seconds": round(st_seconds, 2), "gpu": args.st_gpu,
                "psnr_content": psnr(theirs)},
            "random_subset": {"psnr_content": psnr(random_subset)},
            "views": args.views, "size": args.size,
        }
        print(json.dumps(row, indent=2), flush=True)
        del ours, theirs, random_subset
    tmp.cleanup()


if __name__ == "__main__":
    main()
