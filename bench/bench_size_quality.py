"""Size vs rendered quality: the evidence behind the encoder's defaults (palette, codebooks, WebP effort, order).

For every scene, every encoder variant is written as a .sog bundle, decoded, rendered from the quality check's
``fast`` cameras (2 orbit views and 2 from inside the scene, 256x256; before issue 15: 4 orbit views) and compared
with renders of the original (content PSNR: pixels with opacity in either render; mean over all views, and per
view kind). splat-transform 3.7.0's output of the same PLY (``-g cpu``, or its WebGPU path where $ST names the
GPU machine's packed copy; cached in bench/out/peer/NAME.sog; produced once by bench_codec.py or by this script
with ``--peer``) is measured the same
way. Prints one Markdown table per sweep; full numbers go to bench/out/size_quality.json.

    .venv/bin/python bench/bench_size_quality.py --sweep palette --scenes flowers_3_0 tile-30k-sh3
    .venv/bin/python bench/bench_size_quality.py --sweep final
Scenes: guitar, flowers_3_0 (shared real data), tile-30k-sh3 (tile_scene over flowers, SH3),
gen-30k-sh3 (generate_scene), tile-guitar-1m-sh2 / tile-flowers-4m-sh3 (bench_e2e's tiled real scenes),
wide-30k-sh3 (wide_range_scene over flowers: object, distant shell, faint
floaters; log-scales over e^10); gtile-*/gwide-* are tile_scene / wide_range_scene over guitar. Runs on CPU.
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sogs_compressor import presets  # noqa: E402
from sogs_compressor.device import resolve_device  # noqa: E402
from sogs_compressor.options import CompressOptions  # noqa: E402
from sogs_compressor.pipeline import compress_splats, order_splats  # noqa: E402
from sogs_compressor.quantize import codebook_rd as rd  # noqa: E402
from sogs_compressor.quantize.palette import palette_size  # noqa: E402
from sogs_compressor.read import read_scene  # noqa: E402
from sogs_compressor.read.sog import read_sog  # noqa: E402
from sogs_compressor.render.quality import default_cameras, quality_check, render_views  # noqa: E402
from sogs_compressor.sample import generate_scene, tile_scene, wide_range_scene  # noqa: E402
from sogs_compressor.sog.encode import encode_sog  # noqa: E402
from sogs_compressor.sog.webp import WebpEncoder  # noqa: E402
from sogs_compressor.splats import SplatSet  # noqa: E402
from sogs_compressor.verify.metrics import attribute_errors, beyond_counts  # noqa: E402
from sogs_compressor.write.ply import write_ply  # noqa: E402
from sogs_compressor.write.sog import write_sog  # noqa: E402

REAL = Path(os.environ.get("SOGS_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
PEER = REPO / ".peer" / "node_modules" / ".bin" / "splat-transform"
OUT = REPO / "bench" / "out"
SCENES = ("guitar", "flowers_3_0", "tile-30k-sh3", "gen-30k-sh3", "wide-30k-sh3")


@dataclass
class Variant:
    """One encoder configuration; None fields come from ``preset`` like the CLI's."""

    name: str
    preset: str = "balanced"
    palette: str | None = None  # policy name, or "n/K" for count // K entries, or an int as a string
    palette_order: str | None = None
    rate_weight: float | None = None
    palette_rate_weight: float | None = None
    position_bits: int | None = None
    webp_method: int | None = None
    webp_quality: int | None = None
    order: str | None = None
    kmeans_method: str = "auto"
    iterations: int | None = None
    error_bound: bool = True
    position_shift: float | None = None  # codebook_rd.POSITION_SHIFT for this variant
    shift_by_opacity: bool | None = None  # codebook_rd.POSITION_SHIFT_BY_OPACITY for this variant
    extra: dict = field(default_factory=dict)


def scene_splats(name: str, work: Path) -> tuple[SplatSet, Path]:
    """The scene as splats and as a float PLY (splat-transform's input)."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{name}.ply"
    if not path.exists():
        if name == "guitar":
            splats = read_scene(REAL / "guitar.compressed.ply").splats
        elif name == "flowers_3_0":
            splats = read_scene(REAL / "flowers_3_0" / "meta.json").splats
        elif name.startswith(("tile-guitar-", "tile-flowers-")):  # the end-to-end benchmark's scenes
            sys.path.insert(0, str(REPO / "bench"))
            from bench_codec import prepare_scenes

            return read_scene(prepare_scenes([name], work)[name]).splats, path
        elif name.startswith("tile-"):
            count, degree = _size_and_degree(name)
            flowers = read_scene(REAL / "flowers_3_0" / "meta.json").splats
            splats = tile_scene(flowers, count, seed=1, sh_degree=degree)
        elif name.startswith("wide-"):
            count, degree = _size_and_degree(name)
            flowers = read_scene(REAL / "flowers_3_0" / "meta.json").splats
            splats = wide_range_scene(count, seed=0, source=flowers, sh_degree=degree)
        elif name.startswith(("gtile-", "gwide-")):  # the same over guitar (SH 0)
            count, degree = _size_and_degree(name)
            guitar = read_scene(REAL / "guitar.compressed.ply").splats
            splats = (tile_scene(guitar, count, seed=1, sh_degree=degree) if name.startswith("gtile-") else
                      wide_range_scene(count, seed=0, source=guitar, sh_degree=degree))
        elif name.startswith("gen-"):
            count, degree = _size_and_degree(name)
            splats = generate_scene(count, sh_degree=degree, seed=0)
        else:
            raise SystemExit(f"unknown scene {name}")
        write_ply(splats, path)
    return read_scene(path).splats, path


def _size_and_degree(name: str) -> tuple[int, int]:
    """``tile-30k-sh3`` -> (30000, 3)."""
    _, size, sh = name.split("-")
    return int(float(size[:-1]) * {"k": 1_000, "m": 1_000_000}[size[-1]]), int(sh.removeprefix("sh"))


def resolve_palette(spec: str, count: int) -> int:
    """A sweep's palette: a policy name, ``n/K`` (count // K entries), ``st*F`` (F x splat-transform's rule) or
    a number of entries."""
    if spec.startswith("st*"):
        return max(1, int(float(spec[3:]) * palette_size(count, "st")))
    if spec.startswith("n/"):
        return max(1, count // int(spec[2:]))
    if spec.isdigit():
        return int(spec)
    return palette_size(count, spec)


def encode_variant(splats: SplatSet, variant: Variant, device: torch.device, work: Path) -> dict:
    """Write ``variant``'s bundle of ``splats``; its bytes (total and per texture), seconds, decoded splats."""
    requested = CompressOptions(preset=variant.preset, device=str(device), layout="bundle",
                                webp_method=variant.webp_method, webp_quality=variant.webp_quality, order=variant.order)
    options = presets.resolve(requested)
    started = time.perf_counter()
    ordered = splats.take(order_splats(splats, options.order, device, options.seed))
    settings = presets.encoder_settings(options, ordered.count)
    if variant.palette is not None:
        settings["palette_size"] = resolve_palette(variant.palette, ordered.count)
    settings["error_bound"] = variant.error_bound
    for key in ("palette_order", "rate_weight", "palette_rate_weight", "position_bits"):
        if getattr(variant, key) is not None:
            settings[key] = getattr(variant, key)
    encoder = WebpEncoder(presets.webp_effort(requested))
    default_shift, default_by_opacity = rd.POSITION_SHIFT, rd.POSITION_SHIFT_BY_OPACITY
    if variant.position_shift is not None:
        rd.POSITION_SHIFT = variant.position_shift
    if variant.shift_by_opacity is not None:
        rd.POSITION_SHIFT_BY_OPACITY = variant.shift_by_opacity
    try:
        encoded = encode_sog(ordered, iterations=variant.iterations or options.iterations, seed=options.seed,
                             device=device, on_image=encoder.submit, kmeans_method=variant.kmeans_method, **settings)
    finally:
        rd.POSITION_SHIFT, rd.POSITION_SHIFT_BY_OPACITY = default_shift, default_by_opacity
    webps = encoder.results()
    files = write_sog(work, "variant", "bundle", encoded.meta, webps)
    seconds = time.perf_counter() - started
    bundle = next(f for f in files if f.role == "bundle")
    decoded = read_sog(bundle.path).splats
    return {
        "bytes": Path(bundle.path).stat().st_size,
        "textures": {name: len(data) for name, data in webps.items()},
        "palette": encoded.palette_size,
        "seconds": round(seconds, 2),
        "decoded": decoded,
        **worst_case_columns(attribute_errors(ordered, decoded)),
    }


def worst_case_columns(errors: dict) -> dict:
    """The per-splat worst cases a table row shows: largest log-scale growth / f_dc error, splats beyond bounds."""
    return {"log_scale_growth_max": errors["log_scale_growth_max"], "f_dc_abs_max": errors["f_dc_abs_max"],
            "beyond": beyond_counts(errors),
            "errors": {key: errors[key] for key in ERROR_KEYS if key in errors}}


ERROR_KEYS = ("position_rel_median", "position_rel_max", "f_dc_rmse", "opacity_mae", "log_scale_rmse",
              "rotation_deg_median", "f_rest_rmse")
"""The per-attribute errors kept in the JSON beside each row (which attribute a PSNR difference comes from)."""


def peer_worst_cases(splats: SplatSet, decoded: SplatSet, device: torch.device) -> dict:
    """Worst cases of splat-transform's output: its splats are in its Morton order, which ours reproduces bit for
    bit (order/morton.py); nothing when the orders do not match (positions far apart)."""
    ordered = splats.take(order_splats(splats, "morton", device, 0))
    errors = attribute_errors(ordered, decoded)
    return worst_case_columns(errors) if errors["position_rel_max"] < 0.01 else {}


def peer_output(name: str, ply: Path, run_peer: bool) -> Path | None:
    """splat-transform's cached .sog of the scene (made now with ``run_peer``; ~100 s per 30K SH scene)."""
    target = OUT / "peer" / f"{name}.sog"
    if not target.exists() and run_peer and (PEER.exists() or os.environ.get("ST")):
        target.parent.mkdir(parents=True, exist_ok=True)
        # $ST (the GPU machine's packed splat-transform, bench/run_gpu_suite.sh): its WebGPU path
        command = shlex.split(os.environ["ST"]) if os.environ.get("ST") else [str(PEER), "-g", "cpu"]
        subprocess.run([*command, "-q", "-w", str(ply), str(target)], check=True, timeout=1800)
    return target if target.exists() else None


def content_psnr(original: SplatSet, decoded: SplatSet, cameras, reference, device) -> dict:
    q = quality_check(original, decoded, "fast", device, cameras, reference=reference)
    return {"psnr_content": q["summary"]["psnr_content"]["mean"],
            "psnr_content_worst": q["summary"]["psnr_content"]["worst"],
            "psnr": q["summary"]["psnr"]["mean"], "ssim": q["summary"]["ssim"]["mean"],
            **by_kind_columns(q)}


def by_kind_columns(quality: dict) -> dict:
    """Mean content PSNR per view kind (``psnr_content_orbit``, ``..._interior``, ``..._training``) and the
    score ``--target-psnr`` uses (the lowest of them)."""
    return {"score": quality["score"]["psnr_content"],
            **{f"psnr_content_{kind}": k["psnr_content"]["mean"] for kind, k in quality["by_kind"].items()}}


SWEEPS: dict[str, list[Variant]] = {
    "palette": [
        Variant("st-rule freq", palette="st", palette_order="frequency"),
        Variant("st-rule pca", palette="st", palette_order="pca"),
        *[Variant(f"n/{k} {o}", palette=f"n/{k}", palette_order=o)
          for k in (2, 4, 8, 16) for o in ("frequency", "pca")],
    ],
    "codebook": [
        *[Variant(f"rate weight {w:g}", rate_weight=w) for w in (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)],
    ],
    "webp": [
        *[Variant(f"m{m} q{q}", webp_method=m, webp_quality=q)
          for m, q in ((0, 0), (2, 25), (3, 50), (4, 50), (4, 75), (5, 50), (5, 90), (6, 90), (6, 100))],
    ],
    "joint": [Variant(f"rw {w:g} pos {b}", rate_weight=w, position_bits=b)
              for b in (16, 14, 13, 12) for w in (0.0, 2.0, 4.0, 8.0)],
    "order": [Variant("morton", order="morton"), Variant("plas", order="plas")],
    "kmeans": [Variant(f"{name} k-means {method}{f' {it} it' if it else ''}", rate_weight=w, position_bits=b,
                       kmeans_method=method, iterations=it)
               for name, w, b in (("balanced", None, None), ("rw 0 pos 16", 0.0, 16))
               for method, it in (("hierarchical", None), ("flat", None), ("flat", 20))],
    "isolate": [Variant(f"rw {w:g} pos {b}", rate_weight=w, position_bits=b)
                for w, b in ((0.0, 16), (0.0, 15), (1.0, 16), (2.0, 16), (2.0, 15))],
    "small": [Variant(f"palette {p} rw {w:g} pos {b}", palette=p, rate_weight=w, position_bits=b)
              for p in ("st", "n/2", "n/4") for w in (4.0, 8.0) for b in (14, 13)],
    "palette_rd": [Variant(f"palette {p} prw {w:g}", palette=p, palette_rate_weight=w)
                   for p in ("st", "st*0.85", "st*0.7") for w in (0.0, 4.0, 8.0, 16.0, 32.0)],
    "palette_joint": [Variant(f"palette {p} prw {pw:g} rw {w:g} pos {b}", palette=p, palette_rate_weight=pw,
                              rate_weight=w, position_bits=b)
                      for p in ("st", "st*0.85", "st*0.75") for pw in (16.0, 32.0) for w, b in ((2.0, 15), (4.0, 14))],
    "palettized": [Variant(f"palette {p} rw {w:g} pos {b}", palette=p, rate_weight=w, position_bits=b)
                   for p in ("st*0.75", "st*0.7") for w, b in ((4.0, 14), (8.0, 14), (4.0, 13), (8.0, 13))],
    "palette_order": [Variant(order, palette_order=order) for order in ("frequency", "first-use", "pca")],
    "target": [],  # target_rows: --target-psnr at splat-transform's quality
    "bound": [Variant(f"{preset}{'' if bound else ' --no-error-bound'}", preset=preset, error_bound=bound)
              for preset in ("fast", "balanced", "max") for bound in (False, True)],
    "default": [Variant("balanced (the default)")],
    "position_shift": [Variant(f"position shift {shift:g}", position_shift=shift)
                       for shift in (0.05, 0.1, 0.2, 0.4, 1e9)],
    "position_shift_opacity": [
        *[Variant(f"position shift {shift:g} / alpha", position_shift=shift, shift_by_opacity=True)
          for shift in (0.025, 0.05, 0.1)],
        Variant("position shift 0.1", position_shift=0.1, shift_by_opacity=False),
        Variant("opacity rule only (session 13)", position_shift=1e9)],
    "levers": [Variant("balanced (the default)"), Variant("pos 16", position_bits=16), Variant("pos 15", position_bits=15),
               Variant("rw 0", rate_weight=0.0), Variant("prw 0", palette_rate_weight=0.0),
               Variant("rw 0 prw 0 pos 16", rate_weight=0.0, palette_rate_weight=0.0, position_bits=16)],
    "bound_default": [Variant("balanced --no-error-bound", error_bound=False), Variant("balanced")],
    "presets": [Variant("fast", preset="fast"), Variant("balanced", preset="balanced"), Variant("max", preset="max")],
    "final": [Variant("old balanced (st palette, frequency, MSE)", palette="st", palette_order="frequency",
                      rate_weight=0.0),
              Variant("balanced (new default)")],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", choices=sorted(SWEEPS), default="final")
    parser.add_argument("--scenes", nargs="+", default=list(SCENES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--peer", action="store_true", help="run splat-transform where its output is not cached")
    parser.add_argument("--work", type=Path, default=OUT / "scenes")
    args = parser.parse_args()
    if not REAL.is_dir():
        print(f"needs the shared real scenes at {REAL}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    device = resolve_device(args.device)
    report_path = OUT / "size_quality.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    for scene in args.scenes:
        splats, ply = scene_splats(scene, args.work)
        cameras = default_cameras(splats, "fast")
        reference = render_views(splats, cameras, device)
        rows = []
        peer = peer_output(scene, ply, args.peer)
        peer_row = None
        if peer is not None:
            peer_row = {"variant": "splat-transform 3.7.0", "bytes": peer.stat().st_size, "palette": None,
                        "seconds": None, **content_psnr(splats, read_sog(peer).splats, cameras, reference, device),
                        **peer_worst_cases(splats, read_sog(peer).splats, device)}
            rows.append(peer_row)
        with tempfile.TemporaryDirectory() as tmp:
            if args.sweep == "target":
                rows += target_rows(splats, peer_row, device, Path(tmp))
            for variant in SWEEPS[args.sweep]:
                encoded = encode_variant(splats, variant, device, Path(tmp))
                decoded = encoded.pop("decoded")
                rows.append({"variant": variant.name, **encoded,
                             **content_psnr(splats, decoded, cameras, reference, device)})
                print(f"  {scene} {variant.name}: {encoded['bytes']} B", file=sys.stderr, flush=True)
        print_table(scene, splats, rows, peer_row)
        report.setdefault(args.sweep, {})[scene] = rows
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=1))
    return 0


def target_rows(splats: SplatSet, peer: dict | None, device: torch.device, work: Path) -> list[dict]:
    """``--target-psnr`` set to splat-transform's content PSNR (and 1 dB above it), through the real pipeline."""
    if peer is None:
        return []
    rows = []
    for margin in (0.0, 1.0):
        goal = round(peer["psnr_content"] + margin, 2)
        started = time.perf_counter()
        result = compress_splats(splats, work / f"target-{margin}", "scene",
                                 CompressOptions(preset="balanced", device=str(device), layout="bundle",
                                                 target_psnr=goal))
        seconds = time.perf_counter() - started
        summary, found = result.quality["summary"], result.quality["target"]
        rows.append({"variant": f"balanced --target-psnr {goal} ({'met' if found['met'] else 'NOT met'}, rung "
                                f"{found['chosen']['rung']}, {len(found['tried'])} encodes)",
                     "bytes": result.output_bytes, "palette": result.palette_size, "seconds": round(seconds, 2),
                     "psnr_content": summary["psnr_content"]["mean"],
                     "psnr_content_worst": summary["psnr_content"]["worst"],
                     "psnr": summary["psnr"]["mean"], "ssim": summary["ssim"]["mean"], "target": found,
                     **by_kind_columns(result.quality),
                     "timings": {k: round(v, 3) for k, v in result.timings.items()}})
        print(f"  target {goal}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items()), file=sys.stderr,
              flush=True)
    return rows


def _db(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(scene: str, splats: SplatSet, rows: list[dict], peer: dict | None) -> None:
    print(f"\n### {scene} ({splats.count:,} splats, SH {splats.sh_degree})\n")
    print("| variant | bytes | x ST | content PSNR dB (mean / worst) | orbit / interior | PSNR dB | palette "
          "| shN bytes | s | max log-scale growth | max f_dc error | splats beyond bounds |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for row in rows:
        ratio = f"{row['bytes'] / peer['bytes']:.3f}" if peer else "-"
        textures = row.get("textures") or {}
        shn = sum(v for k, v in textures.items() if k.startswith("shN")) if textures else None
        print(f"| {row['variant']} | {row['bytes']:,} | {ratio} | {row['psnr_content']:.2f} / "
              f"{row['psnr_content_worst']:.2f} | {_db(row.get('psnr_content_orbit'))} / "
              f"{_db(row.get('psnr_content_interior'))} | {row['psnr']:.2f} | {row.get('palette') or '-'} | "
              f"{shn if shn is not None else '-'} | {row.get('seconds') or '-'} | "
              f"{_worst(row, 'log_scale_growth_max')} | {_worst(row, 'f_dc_abs_max')} | {_beyond(row)} |")
    sys.stdout.flush()


def _worst(row: dict, key: str) -> str:
    return f"{row[key]:.3f}" if key in row else "-"


def _beyond(row: dict) -> str:
    if "beyond" not in row:
        return "-"
    return ", ".join(f"{n} {name}" for name, n in row["beyond"].items()) or "0"


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
