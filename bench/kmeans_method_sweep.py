"""Flat or hierarchical k-means on the CPU for small scenes (issue 11): the sweep that informs the decision.

``kmeans(method="auto")`` runs flat Lloyd on the CPU while one iteration's ``n * k * dim`` is at most
``compute_policy.FLAT_KMEANS_WORK_LIMIT["cpu"]``, hierarchical above. This compresses each scene on ``--device cpu``
with the default settings twice, in this process, alternating which method goes first: ``auto`` (today's choice)
and ``hierarchical`` forced. It records the k-means stage and whole compress seconds, the output bytes, the
palette's weighted k-means error (the objective both methods minimise: each row's squared distance to its centroid
times its footprint weight, summed; measured inside the k-means stage's time, a few ms at these sizes) and the
quality check's content PSNR per view kind.

The k-means method is an argument of ``sog.encode.encode_sog`` only (neither ``CompressOptions`` nor the CLI
exposes it), so the forced runs swap the encoder's ``kmeans`` for a wrapper that passes ``method="hierarchical"``;
the same wrapper, passing every argument through, measures the ``auto`` runs, whose bytes are therefore those of
a plain ``compress``. Nothing of the package is changed on disk.

Scenes: ``bench_codec.prepare_scenes`` names (``tile-flowers-20k-sh3``: the real flowers scene tiled to 20,000
splats, SH 3; ``tile-guitar-32.7k-sh2``...), ``sample`` (``sample.generate_scene()``: 20K SH 3) and
``demo-garden`` (the README demo's SH scene, ``demo.SAMPLES["garden.ply"]``: 50K SH 3). Needs the shared real
scenes (``SOGS_REAL_DATA``, default ../shared/data/real).

    SOGS_REAL_DATA=/work/shared/data/real .venv/bin/python bench/kmeans_method_sweep.py --json /tmp/kmethod.json
    .venv/bin/python bench/kmeans_method_sweep.py --scenes sample tile-flowers-10k-sh1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_codec import REAL, prepare_scenes_in_subprocess  # noqa: E402

from sogs_compressor.compute_policy import FLAT_KMEANS_WORK_LIMIT  # noqa: E402
from sogs_compressor.demo import SAMPLES  # noqa: E402
from sogs_compressor.options import CompressOptions  # noqa: E402
from sogs_compressor.pipeline import compress_file  # noqa: E402
from sogs_compressor.quantize.kmeans import KMeansResult, palette_size_rule  # noqa: E402
from sogs_compressor.sample import generate_scene  # noqa: E402
from sogs_compressor.sog import encode  # noqa: E402
from sogs_compressor.write.ply import write_ply  # noqa: E402

METHODS = ("auto", "hierarchical")

DEFAULT_SCENES = [
    # SH 3 (45 values): auto is flat up to ~27,100 splats (k = 16,384 from 16,384 splats)
    "tile-flowers-3k-sh3", "tile-flowers-6k-sh3", "tile-flowers-10k-sh3", "tile-flowers-20k-sh3",
    "tile-flowers-27k-sh3",
    "tile-guitar-3k-sh3", "tile-guitar-6k-sh3", "tile-guitar-10k-sh3", "tile-guitar-20k-sh3", "tile-guitar-27k-sh3",
    # SH 2 (24 values): flat below 32,768 splats (k = 16,384), hierarchical from there (k = 32,768)
    "tile-flowers-3k-sh2", "tile-flowers-8k-sh2", "tile-flowers-16k-sh2", "tile-flowers-24k-sh2",
    "tile-flowers-32.7k-sh2",
    "tile-guitar-3k-sh2", "tile-guitar-8k-sh2", "tile-guitar-16k-sh2", "tile-guitar-24k-sh2", "tile-guitar-32.7k-sh2",
    # SH 1 (9 values): flat below 65,536 splats (k = 32,768), hierarchical from there (k = 65,536)
    "tile-flowers-3k-sh1", "tile-flowers-10k-sh1", "tile-flowers-32k-sh1", "tile-flowers-50k-sh1",
    "tile-flowers-65.5k-sh1",
    "tile-guitar-3k-sh1", "tile-guitar-10k-sh1", "tile-guitar-32k-sh1", "tile-guitar-50k-sh1", "tile-guitar-65.5k-sh1",
    "sample", "demo-garden",
]

GENERATED = {"sample": {}, "demo-garden": SAMPLES["garden.ply"]}
"""Scenes made by ``sample.generate_scene`` (its keyword arguments): the built-in sample and the demo's SH scene."""


def flat_work(count: int, sh_degree: int) -> float:
    """One flat Lloyd iteration's multiply-adds, ``n * k * dim``, with the default palette size (splat-transform's
    rule): what ``auto`` compares with the CPU limit."""
    dim = 3 * ((sh_degree + 1) ** 2 - 1)
    return float(count * min(count, palette_size_rule(count)) * dim)


def prepare(names: list[str], work: Path) -> dict[str, Path]:
    """Each scene as a float PLY under ``work`` (tiles through ``bench_codec``, written once)."""
    tiles = [n for n in names if n not in GENERATED]
    scenes = prepare_scenes_in_subprocess(tiles, work) if tiles else {}
    for name in names:
        if name in GENERATED:
            path = work / f"{name}.ply"
            if not path.exists():
                write_ply(generate_scene(**GENERATED[name]), path)
            scenes[name] = path
    return {name: scenes[name] for name in names}


@contextmanager
def kmeans_measured(method: str, record: dict) -> Iterator[None]:
    """The encoder's k-means with ``method`` forced (``auto``: passed through as the encoder asked), filling
    ``record`` with the method that ran, its seconds and the palette's plain and weighted squared error."""
    original: Callable[..., KMeansResult] = encode.kmeans

    def measured(data: np.ndarray, k: int, **kwargs) -> KMeansResult:
        if method != "auto":
            kwargs["method"] = method
        started = time.perf_counter()
        result = original(data, k, **kwargs)
        record["kmeans_call_s"] = time.perf_counter() - started
        record["method_used"] = result.method
        record["palette_entries"] = int(result.centroids.shape[0])
        squared = ((np.asarray(data, np.float64) - result.centroids[result.labels].astype(np.float64)) ** 2).sum(1)
        weights = kwargs.get("weights")
        record["sse"] = float(squared.sum())
        record["weighted_sse"] = float((squared * (1.0 if weights is None else np.asarray(weights))).sum())
        return result

    encode.kmeans = measured
    try:
        yield
    finally:
        encode.kmeans = original


def compress_once(ply: Path, out: Path, method: str, seed: int = 0) -> dict:
    """One in-process ``compress --device cpu`` with default settings (but ``seed``) and the k-means ``method``."""
    shutil.rmtree(out, ignore_errors=True)
    record: dict = {"method": method, "seed": seed}
    with kmeans_measured(method, record):
        started = time.perf_counter()
        result = compress_file(ply, out, CompressOptions(device="cpu", seed=seed))
        record["compress_s"] = time.perf_counter() - started
    record.update(splats=result.counts.get("output"), sh=result.sh_degree_out, bytes=result.output_bytes,
                  kmeans_s=result.timings.get("kmeans"), total_s=result.timings.get("total"))
    for kind, summary in (result.quality.get("by_kind") or {}).items():
        record[f"psnr_content_{kind}"] = summary["psnr_content"]["mean"]
    return record


def psnr_change(auto: dict, hierarchical: dict, kind: str) -> str:
    """``auto -> hierarchical (difference)`` of one view kind's mean content PSNR, or ``-`` without that kind."""
    x, y = auto.get(f"psnr_content_{kind}"), hierarchical.get(f"psnr_content_{kind}")
    return "-" if x is None or y is None else f"{x:.2f} -> {y:.2f} ({y - x:+.2f})"


def seed_spread(row: dict) -> str:
    """How far ``auto`` itself moves with another seed (``--noise-seed``): bytes and content PSNR per kind."""
    a, other = row["auto"], row.get("auto_other_seed")
    if other is None:
        return "-"
    kinds = [f"{other[f'psnr_content_{kind}'] - a[f'psnr_content_{kind}']:+.2f}" for kind in ("orbit", "interior")
             if a.get(f"psnr_content_{kind}") is not None]
    return f"{(other['bytes'] / a['bytes'] - 1) * 100:+.2f}%, {' / '.join(kinds)} dB"


def render_table(rows: list[dict]) -> str:
    """A Markdown table, one line per scene: auto's and hierarchical's figures side by side."""
    lines = ["| scene | splats | SH | n*k*dim | auto ran | k-means auto / hier | compress auto / hier | bytes "
             "auto -> hier | weighted error hier / auto | content PSNR orbit auto -> hier | interior auto -> hier | "
             "auto at another seed: bytes, orbit / interior PSNR |",
             "|---|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|"]
    for row in rows:
        a, h = row["auto"], row["hierarchical"]
        bytes_change = (h["bytes"] - a["bytes"]) / a["bytes"] * 100
        error_ratio = h["weighted_sse"] / a["weighted_sse"] if a["weighted_sse"] else float("nan")

        lines.append(
            f"| {row['scene']} | {a['splats']:,} | {a['sh']} | {row['flat_work']:.2g} | {a['method_used']} | "
            f"{a['kmeans_s']:.2f} / {h['kmeans_s']:.2f} s | {a['compress_s']:.1f} / {h['compress_s']:.1f} s | "
            f"{a['bytes']:,} -> {h['bytes']:,} ({bytes_change:+.2f}%) | {error_ratio:.3f} | {psnr_change(a, h, 'orbit')} | "
            f"{psnr_change(a, h, 'interior')} | {seed_spread(row)} |")
    return "\n".join(lines)


def scene_group(row: dict) -> str:
    """``flowers SH 2``, ``guitar SH 3``..., or the scene's own name for the generated ones."""
    name = row["scene"]
    if name.startswith("tile-"):
        return f"{name.split('-')[1]} SH {row['auto']['sh']}"
    return name


def render_summary(rows: list[dict]) -> str:
    """Per group of scenes where ``auto`` ran flat: hierarchical's k-means speed-up, bytes change, weighted error
    ratio and content PSNR change per view kind (mean and worst)."""
    lines = ["| scenes | sizes | k-means speed-up (min-max) | bytes hier vs auto | weighted error hier / auto | "
             "orbit PSNR change mean (worst) | interior PSNR change mean (worst) |", "|---|---|--:|--:|--:|--:|--:|"]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["auto"]["method_used"] == "flat":
            groups.setdefault(scene_group(row), []).append(row)
    for group, members in groups.items():
        speed = [r["auto"]["kmeans_s"] / r["hierarchical"]["kmeans_s"] for r in members]
        size = [(r["hierarchical"]["bytes"] / r["auto"]["bytes"] - 1) * 100 for r in members]
        error = [r["hierarchical"]["weighted_sse"] / r["auto"]["weighted_sse"] for r in members]
        cells = []
        for kind in ("orbit", "interior"):
            change = [r["hierarchical"][f"psnr_content_{kind}"] - r["auto"][f"psnr_content_{kind}"] for r in members
                      if r["auto"].get(f"psnr_content_{kind}") is not None]
            cells.append(f"{np.mean(change):+.2f} ({min(change):+.2f}) dB" if change else "-")
        counts = ", ".join(f"{r['auto']['splats'] / 1000:g}K" for r in members)
        lines.append(f"| {group} | {counts} | {min(speed):.1f}-{max(speed):.1f}x | {min(size):+.2f} to "
                     f"{max(size):+.2f}% | {min(error):.2f}-{max(error):.2f} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=DEFAULT_SCENES)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sogs-bench")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--noise-seed", type=int, metavar="N",
                        help="also run auto with seed N: how far the figures move between two equally good runs")
    parser.add_argument("--table", type=Path, metavar="JSON", help="only print the tables of a saved --json")
    args = parser.parse_args()
    if args.table:
        saved = json.loads(args.table.read_text())
        print(f"{saved['machine']}\n\n{render_table(saved['rows'])}\n\n{render_summary(saved['rows'])}")
        return 0
    if any(n not in GENERATED for n in args.scenes) and not REAL.is_dir():
        print(f"the tiled scenes need the shared real scenes at {REAL} (SOGS_REAL_DATA)", file=sys.stderr)
        return 2

    scenes = prepare(args.scenes, args.work)
    out = args.work / "kmeans-method"
    compress_once(scenes[args.scenes[0]], out / "warm-up", "auto")  # lazy imports and first-use costs, not timed
    rows = []
    for i, (name, ply) in enumerate(scenes.items()):
        order = METHODS if i % 2 == 0 else METHODS[::-1]  # alternated, so that a load change hits both alike
        runs = {method: compress_once(ply, out / f"{name}-{method}", method) for method in order}
        if args.noise_seed is not None:
            runs["auto_other_seed"] = compress_once(ply, out / f"{name}-seed", "auto", args.noise_seed)
        row = {"scene": name, "order": list(order), "load": os.getloadavg()[0],
               "flat_work": flat_work(runs["auto"]["splats"], runs["auto"]["sh"]), **runs}
        rows.append(row)
        print(render_table([row]).splitlines()[-1], flush=True)
    machine = (f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
               f"CPU flat limit {FLAT_KMEANS_WORK_LIMIT['cpu']:.3g}")
    print(f"\n{machine}\n\n{render_table(rows)}\n\n{render_summary(rows)}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
