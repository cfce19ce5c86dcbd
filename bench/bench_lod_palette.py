"""Streamed SOG: per-chunk or level-wide SH palettes and codebooks -- total bytes and rendered quality per level.

One scene, one pyramid and one partition (as ``compress --layout lod`` makes them), written once per variant:

- ``chunk``: the output before shortest codebook decimals, every chunk its own scales / sh0 codebooks and its own
  SH palette (k-means of the chunk) with its own codebook, the codebooks' values written as exact doubles;
- ``chunk-short``: ``compress --layout lod`` now: the same textures, the meta.json codebooks written as the
  shortest decimals that give the same float32 (what every reader keeps: the engine's LUT texture,
  splat-transform's ``Float32Array``, ours; ``sog.meta.codebook_floats``);
- ``level-codebooks``: the scales and sh0 codebooks built once per level (same rate weight and error bound), each
  chunk's labels the nearest entries; the palette per chunk as in ``chunk``;
- ``level-palette``: ``--lod-palette level``'s textures: one k-means per level (``lod.streamed.level_palette``);
  each chunk stores the entries its splats use (relabelled) with a codebook of its own;
- ``level-palette-flat``: the same with the level's k-means forced to flat Lloyd (``auto`` runs the hierarchical
  method past ``compute_policy.FLAT_KMEANS_WORK_LIMIT``, on the CPU already for a 150K-splat level, where chunks run flat);
- ``level-palette-full``: the level's whole palette (and its codebook) in every chunk: byte-identical centroid
  textures, labels indexing one palette -- what a file shared between chunks would hold, duplicated.

The ``level-*`` variants write exact doubles, as ``chunk`` does: compare their bytes with ``chunk``'s (shortest
decimals take the same bytes off each).

Every variant is read back through our lod-meta.json reader: each level rendered from the distance at which the
engine shows it (``lod.quality.measure_levels``, content PSNR) and level 0 by the single-file quality check (default
cameras); bytes are lod-meta.json plus every chunk file. CPU or GPU; same seed, same bytes.

    python bench/bench_lod_palette.py --scene ../shared/data/real/guitar.compressed.ply --chunk-count 8 32
    python bench/bench_lod_palette.py --scene ../shared/data/real/flowers_3_0/meta.json --tile-scene 300000 --sh 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sogs_compressor import presets
from sogs_compressor.device import resolve_device
from sogs_compressor.lod.chunks import partition
from sogs_compressor.lod.pyramid import build_pyramid, level_counts
from sogs_compressor.lod.quality import measure_levels
from sogs_compressor.lod.streamed import level_palette
from sogs_compressor.options import CompressOptions
from sogs_compressor.quantize import codebook_rd as rd
from sogs_compressor.quantize.palette import order_palette, palette_weights
from sogs_compressor.quantize.value_ops import HOST
from sogs_compressor.read import read_scene
from sogs_compressor.read.lod import read_lod
from sogs_compressor.read.sanitize import sanitize
from sogs_compressor.render.quality import quality_check
from sogs_compressor.sample import tile_scene
from sogs_compressor.sog.codebook import codebook_for
from sogs_compressor.sog.colour import COLOUR_WINDOW, encode_opacity
from sogs_compressor.sog.encode import PALETTE_CODEBOOK_SAMPLE, SharedFootprints, encode_sog
from sogs_compressor.sog.layout import rows_to_image, texture_size, with_alpha
from sogs_compressor.sog.meta import codebook_floats
from sogs_compressor.sog.scales import SCALE_WINDOW
from sogs_compressor.sog.sh_palette import centroid_image, encode_labels
from sogs_compressor.sog.webp import WebpEncoder
from sogs_compressor.splats import SplatSet
from sogs_compressor.write.lod import lod_meta, write_chunk, write_lod_meta

VARIANTS = ("chunk", "chunk-short", "level-codebooks", "level-palette", "level-palette-flat", "level-palette-full")


def level_codebooks(level: SplatSet, options: CompressOptions) -> tuple[np.ndarray, np.ndarray]:
    """(scales, sh0) codebooks of a whole level, as the encoder builds a chunk's."""
    footprints = SharedFootprints(level)
    weights = (lambda rows: rd.footprint_weights(footprints.of(rows))) if options.rate_weight else None
    rate = float(options.rate_weight or 0.0)
    scales, _ = codebook_for(level.log_scales, rate, options.seed, ops=HOST, weights=weights,
                             window=SCALE_WINDOW if options.error_bound else None)
    colours, _ = codebook_for(level.f_dc, rate, options.seed, ops=HOST, weights=weights,
                              window=COLOUR_WINDOW if options.error_bound else None)
    return scales, colours


def palette_part(centroids: np.ndarray, labels: np.ndarray, weights: np.ndarray, coeffs: int, bands: int,
                 options: CompressOptions, keep_all: bool, cache: dict) -> tuple[dict, np.ndarray, np.ndarray]:
    """A chunk's (shN meta, centroid image, label rows) from a level palette: the entries it uses, or all."""
    if keep_all:
        if "full" not in cache:
            ordered, order_labels = order_palette(centroids, np.arange(centroids.shape[0]), options.palette_order)
            served = np.ones(ordered.shape[0])
            codebook, centroid_labels = codebook_for(ordered, float(options.palette_rate_weight or 0.0), options.seed,
                                                     sample_size=PALETTE_CODEBOOK_SAMPLE,
                                                     weights=lambda rows: served[rows])
            cache["full"] = (codebook, centroid_image(centroid_labels, coeffs), order_labels, ordered.shape[0])
        codebook, image, remap, count = cache["full"]
        chunk_labels = remap[labels]
    else:
        ordered, chunk_labels = order_palette(centroids, labels, options.palette_order)
        served = np.bincount(chunk_labels, weights=weights, minlength=ordered.shape[0])
        codebook, centroid_labels = codebook_for(ordered, float(options.palette_rate_weight or 0.0), options.seed,
                                                 sample_size=PALETTE_CODEBOOK_SAMPLE, weights=lambda rows: served[rows])
        image, count = centroid_image(centroid_labels, coeffs), ordered.shape[0]
    meta = {"count": int(count), "bands": bands, "codebook": codebook_floats(codebook),
            "files": ["shN_centroids.webp", "shN_labels.webp"]}
    return meta, image, encode_labels(chunk_labels)


def exact_codebooks(meta: dict) -> dict:
    """``meta`` with every codebook value as its float32's exact double: the output before shortest decimals."""
    out = dict(meta)
    for key in ("scales", "sh0", "shN"):
        if isinstance(out.get(key), dict) and "codebook" in out[key]:
            out[key] = {**out[key], "codebook": [float(np.float32(v)) for v in out[key]["codebook"]]}
    return out


def write_variant(variant: str, levels: list[SplatSet], parts, options: CompressOptions, effort, device,
                  folder: Path, chunking: dict) -> dict:
    """Encode and write every chunk of ``variant`` into ``folder``; its bytes and seconds."""
    started = time.perf_counter()
    shared: dict[int, dict] = {}
    for level_index, level in enumerate(levels):
        entry: dict = {}
        if variant == "level-codebooks":
            entry["codebooks"] = level_codebooks(level, options)
        if variant.startswith("level-palette") and level.sh_degree > 0:
            method = "flat" if variant == "level-palette-flat" else "auto"
            centroids, labels = level_palette(level, options, device, method)
            entry["palette"] = (centroids, labels, palette_weights(level.log_scales, level.opacity_logits))
            entry["cache"] = {}
        shared[level_index] = entry
    for chunk in parts.files:
        rows = levels[chunk.level].take(chunk.rows)
        entry = shared[chunk.level]
        settings = presets.encoder_settings(options, rows.count)
        if "palette" in entry:
            settings["palette_size"] = 0
        encoded = encode_sog(rows, **settings, iterations=options.iterations, seed=options.seed, device=device)
        meta, images = encoded.meta, encoded.images
        width, height = texture_size(rows.count)
        if "codebooks" in entry:
            scales, colours = entry["codebooks"]
            images["scales.webp"] = rows_to_image(with_alpha(HOST.nearest(rows.log_scales, scales).astype(np.uint8)),
                                                  width, height)
            alpha = encode_opacity(rows.opacity_logits)
            images["sh0.webp"] = rows_to_image(with_alpha(HOST.nearest(rows.f_dc, colours).astype(np.uint8), alpha),
                                               width, height)
            meta["scales"]["codebook"], meta["sh0"]["codebook"] = codebook_floats(scales), codebook_floats(colours)
        if "palette" in entry:
            centroids, labels, weights = entry["palette"]
            shn, image, label_rows = palette_part(centroids, labels[chunk.rows], weights[chunk.rows],
                                                  rows.coeffs_per_channel, rows.sh_degree, options,
                                                  variant == "level-palette-full", entry["cache"])
            meta["shN"] = shn
            images["shN_centroids.webp"] = image
            images["shN_labels.webp"] = rows_to_image(label_rows, width, height)
        if variant != "chunk-short":
            meta = exact_codebooks(meta)
        encoder = WebpEncoder(effort)
        for name, image in images.items():
            encoder.submit(name, image)
        write_chunk(folder, chunk.name, meta, encoder.results())
    write_lod_meta(folder, lod_meta(parts, chunking))
    seconds = time.perf_counter() - started
    files = [p for p in folder.rglob("*") if p.is_file()]
    by_kind: dict[str, int] = {}
    for p in files:
        by_kind[p.name] = by_kind.get(p.name, 0) + p.stat().st_size
    return {"bytes": sum(by_kind.values()), "by_file": by_kind, "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", required=True)
    parser.add_argument("--tile-scene", type=int, default=None, metavar="N", help="tile the scene to N splats")
    parser.add_argument("--sh", type=int, default=None, help="SH degree of the tiled scene")
    parser.add_argument("--chunk-count", type=int, nargs="+", default=[8], help="--lod-chunk-count values (K)")
    parser.add_argument("--chunk-extent", type=float, default=16.0)
    parser.add_argument("--lod-min-splats", type=int, default=None)
    parser.add_argument("--lod-levels", type=int, default=None)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", default=None, help="keep the outputs in this folder")
    args = parser.parse_args()

    device = resolve_device(args.device)
    given = CompressOptions(device=args.device).validate()
    effort, options = presets.webp_effort(given), presets.resolve(given)
    splats, _ = sanitize(read_scene(args.scene).splats, options.invalid)
    if args.tile_scene:
        splats = tile_scene(splats, args.tile_scene, seed=0, sh_degree=args.sh)
    counts = level_counts(splats.count, args.lod_levels, args.lod_min_splats)
    levels = build_pyramid(splats, counts, device=device, seed=options.seed)
    print(json.dumps({"scene": args.scene, "splats": splats.count, "sh": splats.sh_degree, "levels": counts}),
          flush=True)
    for chunk_count in args.chunk_count:
        parts = partition(levels, chunk_count, args.chunk_extent, options.lod_chunk_min)
        chunking = {"count": chunk_count, "extent": args.chunk_extent, "min": options.lod_chunk_min}
        for variant in args.variants:
            with tempfile.TemporaryDirectory(prefix="lodpal-") as tmp:
                folder = Path(args.keep) / f"k{chunk_count}-{variant}" if args.keep else Path(tmp)
                written = write_variant(variant, levels, parts, options, effort, device, folder, chunking)
                meta = folder / "lod-meta.json"
                entries, _ = measure_levels(splats, lambda level, meta=meta: read_lod(meta, level).splats, len(levels), "fast",
                                            device)
                level0 = read_lod(meta, 0).splats
                single = quality_check(splats, level0, "fast", device)["summary"]["psnr_content"]["mean"]
                print(json.dumps({"chunk_count": chunk_count, "chunks": len(parts.files), "variant": variant,
                                  **written, "psnr_content": [round(e["psnr_content"], 2) for e in entries],
                                  "level0_check_psnr_content": round(single, 2)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
