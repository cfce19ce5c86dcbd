"""What each kind of quality-check view costs: orbit views against views from inside the scene (issue 15).

For each kind: the time to place the cameras, and per view the render time of one scene (prepare excluded),
the splat-tile pairs and the visible splats; then the whole ``quality_check`` of each mode's plan (original
against a copy with colour noise, so both scenes are rendered and compared, as in a compress). Times are the
best of ``--repeat`` after a warm-up; on CUDA they include a synchronize.

    OMP_WAIT_POLICY=PASSIVE python bench/bench_views.py --device cpu --splats 100000 --plans 4+0 2+2 4+2
    python bench/bench_views.py --device cuda --scene ../shared/data/real/flowers_3_0/meta.json --tile-scene 4000000
    python bench/bench_views.py --device cuda --splats 4000000 --plans 4+0 2+2 4+2        # the issue 11 target: <= 0.5 s
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sogs_compressor.device import device_name, resolve_device  # noqa: E402
from sogs_compressor.render.camera import orbit_cameras  # noqa: E402
from sogs_compressor.render.interior import interior_cameras  # noqa: E402
from sogs_compressor.render.quality import quality_check, view_plan  # noqa: E402
from sogs_compressor.render.rasterize import prepare, render  # noqa: E402
from sogs_compressor.splats_torch import SplatTensors  # noqa: E402


def best_of(repeat: int, fn, device: torch.device):
    """(value of the last call, best wall seconds, CPU seconds of that call) over ``repeat`` calls after a
    warm-up call. The CPU seconds (this process, all threads) say what the work costs on a shared machine,
    where the wall time also holds the waits for other processes."""
    value = fn()
    best, cpu = float("inf"), float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        value = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
        if wall < best:
            best, cpu = wall, time.process_time() - start_cpu
    return value, best, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None)
    parser.add_argument("--scene", default=None, help="a scene file instead of sample.generate_scene")
    parser.add_argument("--splats", type=int, default=100_000, help="generated scene size (or --tile-scene N)")
    parser.add_argument("--tile-scene", type=int, default=None, metavar="N",
                        help="with --scene: tile it to N splats (sample.tile_scene, SH 2)")
    parser.add_argument("--views", type=int, default=4, help="views of each kind timed one by one")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--plans", nargs="*", default=["fast", "full"], metavar="PLAN",
                        help="quality_check plans to time whole: a mode (fast, full) or ORBIT+INTERIOR views, e.g. "
                             "4+0 (the fast check before issue 15) or 2+2")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.scene:
        from sogs_compressor.read import read_scene

        splats = read_scene(args.scene).splats
        if args.tile_scene:
            from sogs_compressor.sample import tile_scene

            splats = tile_scene(splats, args.tile_scene, seed=1, sh_degree=2)
        name = f"{args.scene}{f' tiled to {args.tile_scene}' if args.tile_scene else ''}"
    else:
        from sogs_compressor.sample import generate_scene

        splats = generate_scene(args.splats, sh_degree=3, seed=0)
        name = f"generate_scene({args.splats}, SH 3)"
    staged = SplatTensors.from_splats(splats, device)  # as the pipeline holds the scene on a GPU
    g = prepare(staged, device)
    report = {"scene": name, "splats": splats.count, "device": device_name(device),
              "torch_threads": torch.get_num_threads(), "size": args.size, "kinds": {}, "modes": {}}
    placements = {
        "orbit": lambda: orbit_cameras(staged.positions, args.views, args.size, args.size, "-y"),
        "interior": lambda: interior_cameras(staged, args.views, args.size, args.size, "-y"),
    }
    for kind, place in placements.items():
        cameras, t_place, _ = best_of(args.repeat, place, device)
        rows = []
        for cam in cameras:
            result, seconds, cpu = best_of(args.repeat, lambda cam=cam: render(g, cam, allow_empty=True), device)
            rows.append({"camera": cam.name, "seconds": round(seconds, 4), "cpu_s": round(cpu, 4),
                         "pairs": result.pairs,
                         "visible": result.visible, "coverage": round(float(result.alpha.mean()), 3)})
        report["kinds"][kind] = {"place_cameras_s": round(t_place, 4),
                                 "render_s_mean": round(float(np.mean([r["seconds"] for r in rows])), 4),
                                 "render_cpu_s_mean": round(float(np.mean([r["cpu_s"] for r in rows])), 4),
                                 "pairs_mean": int(np.mean([r["pairs"] for r in rows])), "views": rows}
        print(json.dumps({kind: report["kinds"][kind]}), flush=True)
    rng = np.random.default_rng(0)
    noisy = replace(splats, f_dc=splats.f_dc + rng.normal(0, 0.02, splats.f_dc.shape).astype(np.float32))
    noisy = SplatTensors.from_splats(noisy, device)
    for mode in args.plans:
        orbit, interior = (int(n) for n in mode.split("+")) if "+" in mode else (None, None)
        plan = view_plan("fast" if orbit is not None else mode, orbit, args.size, interior=interior)

        def check(plan=plan):
            return quality_check(staged, noisy, "fast", device, views=plan.orbit, interior=plan.interior,
                                 size=plan.size)

        quality, seconds, cpu = best_of(args.repeat, check, device)
        report["modes"][mode] = {"plan": plan.to_dict(), "views": len(quality["views"]), "seconds": round(seconds, 3),
                                 "cpu_s": round(cpu, 3), "psnr_content_by_kind": {k: v["psnr_content"]["mean"]
                                                          for k, v in quality["by_kind"].items()}}
        print(json.dumps({mode: report["modes"][mode]}), flush=True)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
