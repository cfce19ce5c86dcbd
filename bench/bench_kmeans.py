"""Micro-benchmark of the quantizers and the Morton order: squared error against references, and timings.

    .venv/bin/python bench/bench_kmeans.py --device cpu [--parts codebook,kmeans,timing,morton] [--ply F.ply]

Prints one JSON object per measurement. ``codebook``: our 1D codebook vs splat-transform's algorithm
(tests/st_reference.py, checked bit-exact against the splat-transform 3.7.0 CLI on flowers_3_0) on 1M-splat
synthetic distributions shaped like trained scenes. ``kmeans``: hierarchical vs flat Lloyd SSE (same seed and
iterations) on real f_rest (a PLY with f_rest_*, e.g. flowers_3_0 decoded by splat-transform) and on
correlated synthetic data. ``timing``: k-means wall time at palette 65,536. ``morton``: 4M points.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from st_reference import st_quantize_1d  # noqa: E402

from sogs_compressor.order.morton import morton_order  # noqa: E402
from sogs_compressor.quantize.codebook import codebook_sse, quantize_1d  # noqa: E402
from sogs_compressor.quantize.kmeans import kmeans  # noqa: E402


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trained_like_columns(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Pooled (n, 3) columns with the heavy tails of trained scenes."""
    rng = np.random.default_rng(seed)
    log_scales = rng.normal(-4.5, 1.4, size=(n, 3))
    log_scales[: n // 50] = rng.normal(-10.5, 0.8, size=(n // 50, 3))  # near-flat splats
    log_scales = log_scales.clip(-12, 2)
    f_dc = rng.standard_t(4, size=(n, 3)) * 0.7 + 0.4
    f_dc[: n // 100] *= 4.0  # saturated colours
    sh = rng.laplace(0, 0.04, size=(n, 3)) * rng.lognormal(0, 0.8, size=(n, 1))
    return {"log_scales": log_scales, "f_dc": f_dc.clip(-3, 5), "sh_centroid_values": sh}


def bench_codebook(n: int) -> None:
    for name, values in trained_like_columns(n).items():
        values = values.astype(np.float32)
        t = time.perf_counter()
        book, labels = quantize_1d(values)
        ours_s = time.perf_counter() - t
        t = time.perf_counter()
        st_book, st_labels = st_quantize_1d(values)
        st_s = time.perf_counter() - t
        ours = codebook_sse(values, book, labels)
        theirs = codebook_sse(values, st_book, st_labels)
        emit(
            part="codebook", data=name, values=int(values.size), sse_ours=ours, sse_st=theirs,
            sse_ratio=ours / theirs, max_err_ours=float(np.abs(values - book[labels]).max()),
            max_err_st=float(np.abs(values - st_book[st_labels]).max()), seconds_ours=round(ours_s, 3),
            seconds_st_reference_numpy=round(st_s, 3),
        )


def correlated(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6))
    w = rng.normal(size=(6, d)) * 0.15
    return (np.tanh(z @ w) * 0.3 + rng.laplace(scale=0.02, size=(n, d))).astype(np.float32)


def read_f_rest(ply: Path) -> np.ndarray:
    """f_rest rows of a PLY, or of a saved (N, D) .npy array (for machines without plyfile)."""
    if ply.suffix == ".npy":
        return np.load(ply).astype(np.float32)
    from plyfile import PlyData

    vertex = PlyData.read(str(ply))["vertex"]
    names = sorted((p.name for p in vertex.properties if p.name.startswith("f_rest_")),
                   key=lambda s: int(s.split("_")[-1]))
    return np.stack([np.asarray(vertex[name], np.float32) for name in names], axis=1)


def bench_kmeans_quality(device: torch.device, ply: Path | None) -> None:
    cases = []
    if ply is not None and ply.exists():
        real = read_f_rest(ply)
        cases += [(f"{ply.stem} f_rest", real, 2048), (f"{ply.stem} f_rest", real, 8192)]
        rng = np.random.default_rng(1)
        noisy = real + rng.normal(scale=0.01, size=real.shape).astype(np.float32)  # undo its palettization
        cases += [(f"{ply.stem} f_rest + N(0,0.01)", noisy, palette_size_rule_of(noisy))]
    cases += [("synthetic D=45", correlated(40_000, 45), 4096), ("synthetic D=24", correlated(60_000, 24), 8192)]
    for name, data, k in cases:
        row = {"part": "kmeans", "data": name, "n": int(data.shape[0]), "d": int(data.shape[1]), "k": k,
               "device": str(device)}
        for method in ("flat", "hierarchical"):
            sync(device)
            t = time.perf_counter()
            r = kmeans(data, k, iterations=10, seed=0, device=device, method=method)
            sync(device)
            row[f"sse_{method}"] = r.sse
            row[f"seconds_{method}"] = round(time.perf_counter() - t, 2)
            row[f"method_{method}"] = r.method
        row["sse_ratio_hier_over_flat"] = row["sse_hierarchical"] / row["sse_flat"]
        emit(**row)


def palette_size_rule_of(data: np.ndarray) -> int:
    from sogs_compressor.quantize.kmeans import palette_size_rule

    return palette_size_rule(data.shape[0])


def bench_kmeans_timing(device: torch.device, methods: list[str]) -> None:
    for n, d in ((100_000, 45), (1_000_000, 24)):
        data = correlated(n, d, seed=2)
        for method in methods:
            sync(device)
            t = time.perf_counter()
            r = kmeans(data, 65536, iterations=10, seed=0, device=device, method=method)
            sync(device)
            emit(part="timing", n=n, d=d, k=65536, method=r.method, device=str(device),
                 threads=torch.get_num_threads(), seconds=round(time.perf_counter() - t, 2), sse=r.sse,
                 centroids=int(r.centroids.shape[0]), iterations=r.iterations)


def bench_morton(device: torch.device, n: int) -> None:
    rng = np.random.default_rng(3)
    centres = rng.uniform(-20, 20, size=(64, 3))
    pos = (centres[rng.integers(0, 64, n)] + rng.normal(scale=0.3, size=(n, 3))).astype(np.float32)
    morton_order(pos[:1000], device)  # warm-up
    for _ in range(2):
        sync(device)
        t = time.perf_counter()
        order = morton_order(pos, device)
        sync(device)
        emit(part="morton", n=n, device=str(device), threads=torch.get_num_threads(),
             seconds=round(time.perf_counter() - t, 3), permutation=bool(order.size == n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--parts", default="codebook,kmeans,timing,morton")
    parser.add_argument("--ply", type=Path, default=None,
                        help="a PLY with f_rest_* (e.g. flowers_3_0 decoded), or an (N, D) .npy of them")
    parser.add_argument("--codebook-splats", type=int, default=1_000_000)
    parser.add_argument("--morton-points", type=int, default=4_000_000)
    parser.add_argument("--timing-methods", default="hierarchical")
    args = parser.parse_args()
    device = torch.device(args.device)
    parts = set(args.parts.split(","))
    if "codebook" in parts:
        bench_codebook(args.codebook_splats)
    if "kmeans" in parts:
        bench_kmeans_quality(device, args.ply)
    if "timing" in parts:
        bench_kmeans_timing(device, args.timing_methods.split(","))
    if "morton" in parts:
        bench_morton(device, args.morton_points)


if __name__ == "__main__":
    main()
