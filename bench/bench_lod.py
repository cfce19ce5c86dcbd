"""A Streamed SOG, ours against splat-transform 3.7.0's own recipe: wall time, peak memory, bytes, per-level PSNR.

Ours: one command, ``sogs-compressor compress SCENE -o OUT --layout lod`` (pyramid by our decimation, chunks,
lod-meta.json; its quality check off, so that both sides do the same work). splat-transform's recipe, as its
``tools/lod-pyramid.mjs`` builds one: each level decimated from the one before (``--decimate N``, one command per
level), then the levels tagged and written in one command (``l0.ply -l 0 l1.ply -l 1 ... out/lod-meta.json``), with
the same level counts and chunk settings as ours. Times are whole commands (process start-up and reading included),
splat-transform's the sum of its commands; peak RSS is each command's own (splat-transform's: the largest); bytes
are lod-meta.json plus every chunk file. Each level of each output is read back by our reader (it reads
splat-transform's output too: tests/test_lod.py) and rendered against the original from the same orbit cameras
(content PSNR, the quality check's measure): coarser levels score lower by design; the comparison is per level.

    python bench/bench_lod.py                                          # the shared guitar, CPU, default levels
    python bench/bench_lod.py --tile-scene 4000000 --device cuda --st-gpu 0 --st-command "$ST"   # 4M, SH 3
    # 10M, SH 3, over two device calls (the same tiled scene each time): ours and splat-transform's decimations,
    # then its decimations again untimed and its tag-and-write timed; splat-transform's time is the two parts' sum
    python bench/bench_lod.py --tile-scene 10000000 --device cuda --st-gpu 0 --st-command "$ST" --st-part decimate
    python bench/bench_lod.py --tile-scene 10000000 --device cuda --st-gpu 0 --st-command "$ST" --st-part write --skip-ours
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sogs_compressor.device import device_name, resolve_device
from sogs_compressor.lod.pyramid import level_counts
from sogs_compressor.read import read_scene
from sogs_compressor.read.lod import read_manifest
from sogs_compressor.render.quality import default_cameras, quality_check, render_views
from sogs_compressor.sample import tile_scene
from sogs_compressor.write.ply import write_ply

REPO = Path(__file__).resolve().parents[1]
GUITAR = Path(os.environ.get("SOGS_REAL_DATA", REPO.parent / "shared" / "data" / "real")) / "guitar.compressed.ply"
SPLAT_TRANSFORM = REPO / ".peer" / "node_modules" / ".bin" / "splat-transform"
MEASURE = ("import json, resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
           "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr); "
           "print(json.dumps({'rc': p.returncode, 'maxrss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}),"
           " file=sys.stderr); sys.exit(0)")
"""Runs a command as its own child and reports that child's peak RSS (so no other command's counts)."""


def measured(command: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """(the finished command, seconds, peak RSS in GiB); raises if it failed."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    stats = json.loads(proc.stderr.strip().splitlines()[-1])
    if stats["rc"] != 0:
        raise SystemExit(f"failed ({stats['rc']}): {shlex.join(command)}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc, seconds, stats["maxrss_kib"] / 2**20


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".webp"))


def per_level_psnr(meta: Path, original, cameras, reference, device) -> list[float]:
    levels = read_manifest(meta).levels
    scores = []
    for level in range(levels):
        decoded = read_scene(meta, level).splats
        report = quality_check(original, decoded, "fast", device, cameras=cameras, reference=reference)
        scores.append(round(report["summary"]["psnr_content"]["mean"], 2))
    return scores


def progress(fields: dict) -> None:
    """One JSON line per finished step on stderr, so that a run cut short by a time limit still says how far each
    side got (at 4M splats the whole comparison takes minutes)."""
    print(json.dumps(fields), file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", default=str(GUITAR), help="input scene (default: the shared guitar)")
    parser.add_argument("--tile-scene", type=int, default=None, metavar="N",
                        help="tile the scene to N splats at SH degree 3 (sample.tile_scene) first")
    parser.add_argument("--device", default=None, help="our device (default auto)")
    parser.add_argument("--st-gpu", default="cpu", help="splat-transform's -g value (default cpu)")
    parser.add_argument("--st-command", default=str(SPLAT_TRANSFORM),
                        help="splat-transform's command line (default: the npm peer in .peer/; on the GPU machine "
                             "the packed one: $ST of .peer-gpu/env.sh)")
    parser.add_argument("--lod-levels", type=int, default=None)
    parser.add_argument("--lod-min-splats", type=int, default=None)
    parser.add_argument("--lod-chunk-count", type=int, default=512)
    parser.add_argument("--lod-chunk-extent", type=float, default=16.0)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--skip-st", action="store_true", help="do not run splat-transform")
    parser.add_argument("--skip-ours", action="store_true", help="do not run ours")
    parser.add_argument("--st-part", choices=("all", "decimate", "write"), default="all",
                        help="splat-transform's recipe in two device calls when one cannot hold it (10M splats): "
                             "'decimate' times its decimation commands only; 'write' runs them untimed, then times "
                             "its tag-and-write command and measures its levels (add the two calls' times)")
    parser.add_argument("--keep", default=None, metavar="DIR", help="write the outputs here (default: a temp dir)")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    work = Path(args.keep or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    splats = read_scene(args.scene).splats
    scene_path = Path(args.scene)
    if args.tile_scene:
        splats = tile_scene(splats, args.tile_scene, seed=1, sh_degree=3)
        scene_path = work / "tiled.ply"
        write_ply(splats, scene_path)
    counts = level_counts(splats.count, args.lod_levels, args.lod_min_splats)
    chunking = ["--lod-chunk-count", str(args.lod_chunk_count), "--lod-chunk-extent", f"{args.lod_chunk_extent:g}"]

    ours = None
    if not args.skip_ours:
        ours_out = work / "ours"
        command = [sys.executable, "-m", "sogs_compressor", "compress", str(scene_path), "-o", str(ours_out),
                   "--layout", "lod", "--lod-levels", str(len(counts)), "--lod-min-splats", str(counts[-1]),
                   *chunking, "--quality-check", "off", "--viewer", "off", "--json", "-q"]
        if args.device:
            command += ["--device", args.device]
        proc, ours_seconds, ours_rss = measured(command)
        ours_result = json.loads(proc.stdout)
        progress({"ours_seconds": round(ours_seconds, 2), "ours_timings": ours_result["timings"]})
        ours = {"seconds": round(ours_seconds, 2), "peak_rss_gib": round(ours_rss, 3),
                "peak_gpu_gib": round(ours_result.get("peak_gpu_bytes", 0) / 2**30, 3),
                "bytes": folder_bytes(ours_out), "per_level": ours_result["lod"]["levels"],
                "chunks": ours_result["lod"]["chunks"], "timings": ours_result["timings"]}

    theirs = None
    if not args.skip_st:
        st = shlex.split(args.st_command)
        st_out = work / "st"
        levels = [str(scene_path)]
        steps = []  # the timed commands
        for level, count in enumerate(counts[1:], start=1):
            target = str(work / f"st_l{level}.ply")
            step = measured([*st, "-q", "-w", "-g", args.st_gpu, levels[-1], "--decimate", str(count), target])
            if args.st_part != "write":
                steps.append(step)
            progress({"splat_transform_level": level, "seconds": round(step[1], 2),
                      "timed": args.st_part != "write"})
            levels.append(target)
        if args.st_part != "decimate":
            tagged = [item for level, path in enumerate(levels) for item in (path, "-l", str(level))]
            steps.append(measured([*st, "-q", "-w", "-g", args.st_gpu, *tagged, *chunking,
                                   str(st_out / "lod-meta.json")]))
        theirs = {"part": args.st_part, "seconds": round(sum(s[1] for s in steps), 2),
                  "seconds_per_command": [round(s[1], 2) for s in steps],
                  "peak_rss_gib": round(max(s[2] for s in steps), 3)}
        if args.st_part != "decimate":
            manifest = read_manifest(st_out / "lod-meta.json")
            theirs.update(bytes=folder_bytes(st_out), counts=manifest.counts, chunks=len(manifest.file_level))

    device = resolve_device(args.device)
    cameras = default_cameras(splats, "fast", args.views, args.size)
    reference = render_views(splats, cameras, device)
    row = {"scene": scene_path.name, "input": splats.count, "levels": counts, "device": device_name(device),
           "views": args.views, "size": args.size}
    if ours is not None:
        ours["psnr_content_per_level"] = per_level_psnr(work / "ours" / "lod-meta.json", splats, cameras, reference,
                                                        device)
        row["ours"] = ours
    if theirs is not None:
        row["splat_transform"] = {**theirs, "gpu": args.st_gpu}
        if args.st_part != "decimate":
            row["splat_transform"]["psnr_content_per_level"] = per_level_psnr(
                work / "st" / "lod-meta.json", splats, cameras, reference, device)
    if ours is not None and theirs is not None and args.st_part == "all":
        row["ours_faster"] = round(theirs["seconds"] / ours["seconds"], 2)
        row["bytes_ours_over_theirs"] = round(ours["bytes"] / theirs["bytes"], 3)
    print(json.dumps(row, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
