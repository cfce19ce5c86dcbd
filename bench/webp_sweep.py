"""Lossless WebP effort per texture: encode seconds and bytes of every SOG texture of real scenes for a grid of
(method, quality), to choose each texture's effort by bytes per second (presets.WEBP_EFFORT).

Each scene is encoded once with the balanced settings; then every texture is WebP-encoded at every grid point,
``--workers`` encodes at a time (each encode is one thread; keep workers well under the core count so the
times are not inflated by sharing). Prints per texture the grid sorted by seconds and writes JSON.

    python bench/webp_sweep.py --scenes tile-guitar-4m-sh2 tile-flowers-4m-sh3 --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_codec import prepare_scenes  # noqa: E402

from sogs_compressor import presets  # noqa: E402
from sogs_compressor.device import resolve_device  # noqa: E402
from sogs_compressor.options import CompressOptions  # noqa: E402
from sogs_compressor.pipeline import order_splats  # noqa: E402
from sogs_compressor.read import read_scene  # noqa: E402
from sogs_compressor.sog.encode import encode_sog  # noqa: E402
from sogs_compressor.sog.webp import encode_webp  # noqa: E402

GRID = [(m, q) for m in range(7) for q in (0, 25, 50, 75, 100) if (m, q) != (6, 100)]


def sweep_scene(ply: Path, device, workers: int) -> list[dict]:
    splats = read_scene(ply).splats
    options = presets.resolve(CompressOptions(device=str(device)))
    ordered = splats.take(order_splats(splats, options.order, device, options.seed))
    settings = presets.encoder_settings(options, ordered.count)
    images = encode_sog(ordered, **settings, iterations=options.iterations, seed=0, device=device).images

    def one(job: tuple[str, int, int]) -> dict:
        name, method, quality = job
        t = time.perf_counter()
        size = len(encode_webp(images[name], method, quality))
        return {"texture": name, "method": method, "quality": quality, "seconds": time.perf_counter() - t,
                "bytes": size}

    jobs = [(name, m, q) for name in images for m, q in GRID]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, jobs))


PLANS = {
    "uniform": {},
    "measured": {"means_l.webp": (3, 0), "means_u.webp": (3, 50), "quats.webp": (4, 0), "scales.webp": (3, 50),
                 "sh0.webp": (2, 50)},
    "measured+scales75": {"means_l.webp": (3, 0), "means_u.webp": (3, 50), "quats.webp": (4, 0),
                          "scales.webp": (4, 75), "sh0.webp": (2, 50)},
}
"""Per-texture effort tables for the balanced preset compared by ``--plans`` (whole pipeline, in-process, warm)."""


def compare_plans(scenes: dict[str, Path], device, names: list[str], repeat: int) -> list[dict]:
    """The balanced pipeline with each plan in ``names`` as presets.WEBP_EFFORT["balanced"], round-robin, warm."""
    from sogs_compressor.pipeline import compress_file

    rows = []
    for scene, ply in scenes.items():
        out = Path(tempfile.mkdtemp(prefix="plan-"))
        compress_file(ply, out, CompressOptions(device=str(device), layout="bundle"))  # warm-up
        for _ in range(repeat):
            for plan in names:
                presets.WEBP_EFFORT["balanced"] = PLANS[plan]
                result = compress_file(ply, out, CompressOptions(device=str(device), layout="bundle"))
                rows.append({"scene": scene, "plan": plan, "bytes": result.output_bytes,
                             "webp_wait": result.timings["webp_wait"], "total": result.timings["total"],
                             "textures": result.textures})
                print(f"{scene} {plan}: {result.output_bytes:,} B, webp wait {result.timings['webp_wait']:.2f} s, "
                      f"total {result.timings['total']:.2f} s; last texture done at "
                      f"{max(t['submitted_s'] + t['queued_s'] + t['encode_s'] for t in result.textures.values()):.2f} s "
                      f"({max(result.textures, key=lambda k: sum(result.textures[k][x] for x in ('submitted_s', 'queued_s', 'encode_s')))})",
                      flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 4))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sogs-bench")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plans", nargs="*", choices=list(PLANS),
                        help="compare per-texture effort tables through the whole pipeline instead of sweeping")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.plans:
        rows = compare_plans(prepare_scenes(args.scenes, args.work), device, args.plans, args.repeat)
        if args.json:
            args.json.write_text(json.dumps(rows))
        return 0
    report = {}
    for name, ply in prepare_scenes(args.scenes, args.work).items():
        rows = sweep_scene(ply, device, args.workers)
        report[name] = rows
        for texture in dict.fromkeys(r["texture"] for r in rows):
            mine = sorted((r for r in rows if r["texture"] == texture), key=lambda r: r["seconds"])
            smallest = min(r["bytes"] for r in mine)
            print(f"{name} {texture}: " + ", ".join(
                f"m{r['method']}q{r['quality']} {r['seconds']:.2f}s +{100 * (r['bytes'] / smallest - 1):.2f}%"
                for r in mine[:12]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"workers": args.workers, "cpus": os.cpu_count(), "scenes": report}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
