"""Where the default path's time goes, finer than the pipeline's own stage timings (issue 11).

For each scene: the pipeline once in-process (warm), then its verify and quality stages again piece by piece with
the device synchronised around each piece (read the bundle, decode the WebPs, decode the attributes, the errors;
cameras, prepare, each render, compare, preview). Scenes are real scenes tiled to size (bench_codec.prepare_scenes).
(bench/webp_sweep.py measures the WebP effort per texture; ``--sample N`` samples every thread of one more warm
compress, for the stages that run on thread pools.)

    python bench/profile_stages.py --scenes tile-guitar-4m-sh2 --json out.json
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


def render_phases(g, camera, timed) -> dict:
    """Seconds of one render's phases: projection, pair building and sorting, the compositor."""
    import math

    import torch

    from sogs_compressor.render import rasterize as r
    from sogs_compressor.render.composite_triton import composite_tiles_triton

    proj, t_project = timed(r.project, g, camera)
    grid_x, grid_y = math.ceil(camera.width / r.TILE), math.ceil(camera.height / r.TILE)
    table, t_table = timed(r._splat_table, proj)
    (tile_of_pair, splat_of_pair), t_pairs = timed(r._sorted_pairs, proj, 0, grid_y, grid_x)

    def tiles():
        per_tile = torch.bincount(tile_of_pair, minlength=grid_x * grid_y)
        first = torch.cumsum(per_tile, 0) - per_tile
        busy = torch.nonzero(per_tile).squeeze(1)
        return busy, first[busy], per_tile[busy]

    (busy, starts, counts), t_tiles = timed(tiles)
    phases = {"project": t_project, "table": t_table, "pairs_sort": t_pairs, "tiles": t_tiles,
              "pairs": int(tile_of_pair.shape[0]), "max_per_tile": int(counts.max())}
    if g.device.type == "cuda":
        _, phases["composite"] = timed(composite_tiles_triton, table, busy, starts, counts, splat_of_pair, grid_x,
                                       r.ALPHA_CAP, r.ALPHA_MIN, r.T_MIN)
    return phases


def print_profile(fn, top: int) -> None:
    """The calling thread's top functions (cumulative and own time) over one call of ``fn``."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    for key in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(top)
        print(text.getvalue(), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sogs-bench")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cprofile", type=int, default=0, metavar="N",
                        help="also profile one more warm compress with cProfile and print its top N functions")
    parser.add_argument("--sample", type=int, default=0, metavar="N",
                        help="also sample every thread over one more warm compress (bench/thread_sampler.py) and "
                             "print each thread group's top N functions")
    parser.add_argument("--no-stages", action="store_true", help="skip the piece-by-piece verify and quality timing")
    args = parser.parse_args()

    import torch
    from bench_codec import prepare_scenes

    from sogs_compressor.options import CompressOptions
    from sogs_compressor.pipeline import compress_file, quality_cameras
    from sogs_compressor.read.sog import read_sog
    from sogs_compressor.render.metrics import compare_images
    from sogs_compressor.render.rasterize import prepare, render
    from sogs_compressor.sog.decode import open_sog, read_meta
    from sogs_compressor.sog.webp import decode_webp

    device = torch.device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(fn, *a, **k):
        sync()
        t = time.perf_counter()
        value = fn(*a, **k)
        sync()
        return value, time.perf_counter() - t

    scenes = prepare_scenes(args.scenes, args.work)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "cpus": os.cpu_count(), "scenes": {}}
    for name, ply in scenes.items():
        out = args.work / "out" / name
        options = CompressOptions(device=args.device, layout="bundle")
        compress_file(ply, out, options)  # warm-up of this process (kernels, caches)
        result, wall = timed(compress_file, ply, out, options)
        row = {"wall": wall, "stages": result.timings, "bytes": result.output_bytes, "webp": result.textures,
               "textures": {f.path.rsplit("/", 1)[-1]: f.bytes for f in result.output_files}}
        if args.cprofile:
            print(f"== {name}: warm compress {wall:.3f} s; stages " +
                  " ".join(f"{k}={v:.3f}" for k, v in result.timings.items()), flush=True)
            print_profile(lambda ply=ply, out=out, options=options: compress_file(ply, out, options), args.cprofile)
        if args.sample:
            from thread_sampler import ThreadSampler

            with ThreadSampler() as sampler:
                sampled = compress_file(ply, out, options)
            print(f"== {name}: sampled warm compress; stages " +
                  " ".join(f"{k}={v:.3f}" for k, v in sampled.timings.items()), flush=True)
            print(sampler.table(args.sample), flush=True)
        if args.no_stages:
            report["scenes"][name] = row
            print(json.dumps({name: row}), flush=True)
            continue
        bundle = next(f.path for f in result.output_files if f.role == "bundle")
        (get, _, close), t_open = timed(open_sog, bundle)
        meta = read_meta(get)
        files = [f for key in ("means", "quats", "scales", "sh0", "shN") if key in meta for f in meta[key]["files"]]
        blobs, t_read = timed(lambda get=get, files=files: {f: get(f) for f in files})
        close()
        row["verify"] = {"open": t_open, "read_entries": t_read,
                         "webp_decode_each": {f: timed(decode_webp, b)[1] for f, b in blobs.items()}}
        with ThreadPoolExecutor(len(blobs)) as pool:
            row["verify"]["webp_decode_parallel"] = timed(
                lambda pool=pool, blobs=blobs: list(pool.map(decode_webp, blobs.values())))[1]
        decoded, row["verify"]["read_sog"] = timed(lambda bundle=bundle: read_sog(bundle).splats)
        from sogs_compressor.order.morton import morton_order
        from sogs_compressor.read import read_scene
        original = read_scene(ply).splats
        ordered = original.take(morton_order(original.positions, device=device))
        from sogs_compressor.verify.metrics import attribute_errors
        _, row["verify"]["attribute_errors"] = timed(attribute_errors, ordered, decoded)
        # the device path the pipeline takes on a GPU (verify/decode.py, verify/metrics_torch.py)
        from sogs_compressor.splats_torch import SplatTensors
        from sogs_compressor.verify.decode import decode_on_device
        from sogs_compressor.verify.metrics_torch import attribute_errors_torch
        images = {f: decode_webp(b) for f, b in blobs.items()}
        tensors, row["verify"]["device_decode"] = timed(decode_on_device, meta, images, device)
        staged, row["verify"]["device_upload_reference"] = timed(SplatTensors.from_splats, ordered, device)
        _, row["verify"]["device_errors_staged"] = timed(attribute_errors_torch, staged, tensors)
        _, row["verify"]["device_errors_blocked_upload"] = timed(attribute_errors_torch, ordered, tensors)
        (cameras, _), t_cams = timed(quality_cameras, ordered, "fast", None)
        row["quality"] = {}
        _, row["quality"]["device_cameras"] = timed(quality_cameras, staged, "fast", None)
        _, row["quality"]["device_prepare_original"] = timed(prepare, staged, device)
        _, row["quality"]["device_prepare_decoded"] = timed(prepare, tensors, device)
        g_orig, t_prep_o = timed(prepare, ordered, device)
        g_dec, t_prep_d = timed(prepare, decoded, device)
        renders = []
        t_views = []
        for cam in cameras:
            for g in (g_orig, g_dec):
                image, t = timed(render, g, cam, allow_empty=True)
                renders.append(image)
                t_views.append(t)
        row["quality"]["render_phases"] = render_phases(g_dec, cameras[1], timed)
        if device.type == "cuda":
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                render(g_dec, cameras[1], allow_empty=True)
                torch.cuda.synchronize(device)
            row["quality"]["render_kernels"] = prof.key_averages().table(sort_by="cuda_time_total", row_limit=14)
        compares = [timed(compare_images, a.image, b.image, a.alpha, b.alpha)[1]
                    for a, b in zip(renders[0::2], renders[1::2], strict=True)]
        row["quality"].update({"cameras": t_cams, "prepare_original": t_prep_o, "prepare_decoded": t_prep_d,
                               "render_each": t_views, "compare_each": compares,
                               "pairs": [r.pairs for r in renders], "visible": [r.visible for r in renders]})
        report["scenes"][name] = row
        print(json.dumps({name: row}), flush=True)
        del original, ordered, decoded, g_orig, g_dec, staged, tensors
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
