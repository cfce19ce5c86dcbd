"""Renderer speed against the issue's targets.

Targets: 8 views of a 1M-splat scene at 512x512 in <= 5 s on one GPU; 4 views of a 100K-splat scene at
256x256 in <= 20 s on 2 CPU cores. The scene is generated (seeded clusters of splats, SH degree 3) unless
``--scene FILE`` names a real one. Times exclude reading the file and include moving splats to the device.

    python bench/bench_render.py                 # both targets that the machine can run
    python bench/bench_render.py --device cpu --splats 100000 --views 4 --size 256
    python bench/bench_render.py --scene ../shared/data/real/guitar.compressed.ply --device cpu
    python bench/bench_render.py --kind interior      # views from inside the scene (render/interior.py)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from sogs_compressor.device import device_name, resolve_device
from sogs_compressor.render.camera import orbit_cameras
from sogs_compressor.render.interior import interior_cameras
from sogs_compressor.render.rasterize import prepare, render
from sogs_compressor.splats import SplatSet

TARGETS = {"cuda": (1_000_000, 8, 512, 5.0), "cpu": (100_000, 4, 256, 20.0)}


def clustered_scene(n: int, seed: int = 0, sh_degree: int = 3) -> SplatSet:
    """Splats in a few hundred Gaussian clusters (like surfaces of objects), sizes tied to local density."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, (256, 3))
    which = rng.integers(0, 256, n)
    s = SplatSet.empty_like_columns(n, sh_degree)
    s.positions[:] = centres[which] + rng.normal(0, 0.15, (n, 3))
    s.log_scales[:] = rng.normal(np.log(0.6 / n ** (1 / 3)), 0.5, (n, 3))
    s.rotations[:] = rng.normal(size=(n, 4))
    s.opacity_logits[:] = rng.normal(1.0, 2.0, n)
    s.f_dc[:] = rng.normal(0, 0.8, (n, 3))
    s.f_rest[:] = rng.normal(0, 0.1, s.f_rest.shape)
    return s


def bench(splats: SplatSet, device: torch.device, views: int, size: int, repeat: int,
          compositor: str = "auto", kind: str = "orbit") -> dict:
    if kind == "interior":
        cameras = interior_cameras(splats, views, size, size)
    else:
        cameras = orbit_cameras(splats.positions, views, size, size)
    render(prepare(splats, device), cameras[0], compositor=compositor)  # warm-up (allocator, kernels)
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        g = prepare(splats, device)
        results = [render(g, cam, compositor=compositor) for cam in cameras]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return {
        "splats": splats.count, "views": views, "kind": kind, "size": size, "device": device_name(device),
        "compositor": compositor,
        "torch_threads": torch.get_num_threads(), "seconds": round(best, 3),
        "seconds_per_view": round(best / views, 3),
        "pairs_per_view": int(np.mean([r.pairs for r in results])),
        "peak_gpu_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--scene", default=None, help="render this file instead of a generated scene")
    parser.add_argument("--splats", type=int, default=None)
    parser.add_argument("--views", type=int, default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--scene-kind", choices=("clusters", "generate"), default="clusters",
                        help="generated scene: density-sized clusters, or sample.generate_scene (larger splats)")
    parser.add_argument("--kind", choices=("orbit", "interior"), default="orbit",
                        help="orbit views (the targets' cameras) or views from inside the scene looking outward")
    parser.add_argument("--compositor", nargs="+", default=["auto"], choices=("auto", "torch", "triton"))
    parser.add_argument("--tile-scene", type=int, default=None, metavar="N",
                        help="with --scene: tile it to N splats (sample.tile_scene, SH 2)")
    parser.add_argument("--segments", nargs="+", type=int, default=[0], metavar="L",
                        help="longest run the PyTorch compositor blends as one unit (0: the device's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    n, views, size, target = TARGETS["cuda" if device.type == "cuda" else "cpu"]
    n, views, size = args.splats or n, args.views or views, args.size or size
    if args.scene:
        from sogs_compressor.read import read_scene

        splats = read_scene(args.scene).splats
        if args.tile_scene:
            from sogs_compressor.sample import tile_scene

            splats = tile_scene(splats, args.tile_scene, seed=1, sh_degree=2)
    else:
        from sogs_compressor.sample import generate_scene

        splats = clustered_scene(n) if args.scene_kind == "clusters" else generate_scene(n, sh_degree=3, seed=0)
    from sogs_compressor.render import rasterize

    default_length = rasterize.segment_length
    for compositor, segment in [(c, g) for c in args.compositor for g in args.segments]:
        rasterize.segment_length = (lambda device, g=segment: g) if segment else default_length
        result = bench(splats, device, views, size, args.repeat, compositor, args.kind)
        result["segment"] = segment or "default"
        result["scene"] = args.scene or f"generated ({args.scene_kind}), SH 3, seed 0"
        if (splats.count, views, size) == TARGETS[device.type][:3] and args.kind == "orbit":
            result["target_seconds"] = target
            result["meets_target"] = result["seconds"] <= target
        print(json.dumps(result))


if __name__ == "__main__":
    main()
