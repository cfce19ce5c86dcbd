"""GPU check and timings for the fused k-means assignment kernel and for PLAS ordering.

Run on a CUDA machine from the repository root:

    PYTHONUNBUFFERED=1 python3 bench/gpu_kernels.py --out /tmp/gpu-bench

Sections (each prints a short table; everything also goes to ``results.json`` in ``--out``):
1. correctness: kernel labels vs a float64 brute force, per precision (ieee/tf32/tf32x3) and D (9/24/45):
   exact-argmin disagreement rate and the relative excess distance of the chosen centroid;
2. Lloyd: 10 iterations with the exact fp32 assignment (precision ieee) vs tf32 / tf32x3, same init: final SSE;
3. speed: N = 4M, K = 65536, D = 24/45: kernel (config sweep) vs the plain chunked torch matmul + argmin;
4. PLAS: time and neighbour distance on generated scenes (100K, 1M, optionally 4M) vs random and Morton,
   plus CPU vs CUDA agreement on a small scene.
Inputs are generated (seeded): SH-like vectors are a heavy-tailed Gaussian mixture, scenes are noisy surfaces.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sogs_compressor.order.plas import plas_features, plas_grid_side, plas_order  # noqa: E402
from sogs_compressor.quantize.assign_triton import (  # noqa: E402
    reference_nearest_centroid,
    triton_available,
    triton_nearest_centroid,
)
from sogs_compressor.splats import SplatSet  # noqa: E402

RESULTS: dict = {}


def log(line: str = "") -> None:
    print(line, flush=True)


def timed(fn, device: torch.device, repeats: int = 3) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls after one warm-up (synchronized)."""
    out = fn()
    torch.cuda.synchronize(device)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, out


def sh_like(n: int, d: int, seed: int, device: torch.device, modes: int = 4096) -> torch.Tensor:
    """Heavy-tailed Gaussian mixture, a stand-in for f_rest vectors (most small, some large)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    centers = torch.randn(modes, d, generator=g) * 0.3 / (1 + torch.arange(d) % 8) ** 0.5
    pick = torch.randint(0, modes, (n,), generator=g)
    scale = torch.exp(torch.randn(n, 1, generator=g) * 0.7 - 3.0)
    return (centers[pick] + scale * torch.randn(n, d, generator=g)).to(device).contiguous()


def torch_chunked(points: torch.Tensor, centroids: torch.Tensor, chunk: int = 32768) -> torch.Tensor:
    """The plain path the kernel replaces: chunked ``||c||^2 - 2 x c^T`` + argmin (fp32)."""
    norms = (centroids * centroids).sum(1)
    out = torch.empty(points.shape[0], dtype=torch.int64, device=points.device)
    for s in range(0, points.shape[0], chunk):
        out[s : s + chunk] = torch.addmm(
            norms[None, :], points[s : s + chunk], centroids.t(), alpha=-2.0
        ).argmin(1)
    return out


# --------------------------------------------------------------------------------------------------------


def section_correctness(device: torch.device) -> None:
    log("## 1. correctness vs float64 brute force (N=65536 points)")
    log(f"{'D':>3} {'K':>6} {'precision':>9} {'disagree %':>11} {'mean excess':>12} {'max excess':>11}")
    rows = []
    for d in (9, 24, 45):
        for k in (1000, 65536):
            pts = sh_like(65536, d, seed=d, device=device)
            cents = sh_like(k, d, seed=100 + d, device=device)
            ref, ref_d = reference_nearest_centroid(pts, cents, chunk_rows=2048)
            for precision in ("ieee", "tf32", "tf32x3", "fp16"):
                lab = triton_nearest_centroid(pts, cents, precision=precision)
                chosen = ((pts.double() - cents.double()[lab]) ** 2).sum(1)
                excess = (chosen - ref_d) / ref_d.clamp_min(1e-30)
                row = {
                    "D": d,
                    "K": k,
                    "precision": precision,
                    "disagree": float((lab != ref).float().mean()),
                    "mean_excess": float(excess.mean()),
                    "max_excess": float(excess.max()),
                }
                rows.append(row)
                log(
                    f"{d:>3} {k:>6} {precision:>9} {row['disagree'] * 100:>10.4f}% {row['mean_excess']:>12.2e}"
                    f" {row['max_excess']:>11.2e}"
                )
    RESULTS["correctness"] = rows


def lloyd(points: torch.Tensor, k: int, iters: int, assign, seed: int = 0) -> tuple[float, torch.Tensor]:
    """Plain Lloyd: random distinct init, ``iters`` assign+update rounds; empty clusters keep their centroid.
    Returns the final SSE (float64, against the last update) and the labels."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    cents = points[torch.randperm(points.shape[0], generator=g)[:k].to(points.device)].clone()
    labels = None
    for _ in range(iters):
        labels = assign(points, cents)
        sums = torch.zeros_like(cents).index_add_(0, labels, points)
        counts = torch.bincount(labels, minlength=k).to(points.dtype)[:, None]
        cents = torch.where(counts > 0, sums / counts.clamp_min(1), cents)
    labels = assign(points, cents)
    sse = float(((points.double() - cents.double()[labels]) ** 2).sum())
    return sse, labels


def section_lloyd(device: torch.device, n: int, k: int) -> None:
    log(f"\n## 2. Lloyd, 10 iterations, N={n}, K={k}: SSE vs exact fp32 assignment (ieee)")
    log(f"{'D':>3} {'precision':>9} {'SSE':>14} {'vs ieee':>9} {'time s':>7}")
    rows = []
    for d in (24, 45):
        pts = sh_like(n, d, seed=7 + d, device=device)
        base = None
        for precision in ("ieee", "tf32", "tf32x3", "fp16"):
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            sse, _ = lloyd(pts, k, 10, lambda p, c, pr=precision: triton_nearest_centroid(p, c, precision=pr))
            torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
            base = sse if precision == "ieee" else base
            rel = sse / base - 1
            rows.append(
                {"D": d, "N": n, "K": k, "precision": precision, "sse": sse, "rel_vs_ieee": rel, "s": elapsed}
            )
            log(f"{d:>3} {precision:>9} {sse:>14.6e} {rel * 100:>8.3f}% {elapsed:>7.2f}")
    RESULTS["lloyd"] = rows


def section_speed(device: torch.device, n: int, k: int, sweep: bool) -> None:
    log(f"\n## 3. assignment speed, N={n}, K={k} (best of 3, after warm-up)")
    log(f"{'D':>3} {'path':>34} {'ms':>9} {'TFLOP/s':>8} {'agree vs torch':>14} {'peak GiB':>8}")
    configs = [dict(block_m=128, block_n=128, num_warps=8, num_stages=3)]
    if sweep:
        configs += [
            dict(block_m=128, block_n=64, num_warps=4, num_stages=3),
            dict(block_m=64, block_n=128, num_warps=4, num_stages=3),
            dict(block_m=128, block_n=128, num_warps=4, num_stages=4),
            dict(block_m=256, block_n=64, num_warps=8, num_stages=3),
            dict(block_m=256, block_n=128, num_warps=8, num_stages=3),
        ]
    rows = []
    for d in (24, 45):
        pts = sh_like(n, d, seed=11 + d, device=device)
        cents = sh_like(k, d, seed=12 + d, device=device)
        flops = 2.0 * n * k * d
        torch.cuda.reset_peak_memory_stats(device)
        base_mem = torch.cuda.memory_allocated(device)
        t_torch, ref = timed(lambda p=pts, c=cents: torch_chunked(p, c), device, repeats=1)
        peak = (torch.cuda.max_memory_allocated(device) - base_mem) / 2**30
        rows.append({"D": d, "path": "torch chunked fp32 (32K rows)", "ms": t_torch * 1e3, "peak_gib": peak})
        log(
            f"{d:>3} {'torch chunked fp32 (32K rows)':>34} {t_torch * 1e3:>9.1f} {flops / t_torch / 1e12:>8.1f} {'-':>14} {peak:>8.2f}"
        )
        for precision in ("tf32", "fp16", "tf32x3", "ieee"):
            for cfg in configs if precision in ("tf32", "fp16") else configs[:1]:
                torch.cuda.reset_peak_memory_stats(device)
                base_mem = torch.cuda.memory_allocated(device)
                t, lab = timed(
                    lambda p=pts, c=cents, pr=precision, cf=cfg: triton_nearest_centroid(
                        p, c, precision=pr, **cf
                    ),
                    device,
                    repeats=1 if precision == "ieee" else 3,
                )
                peak = (torch.cuda.max_memory_allocated(device) - base_mem) / 2**30
                agree = float((lab == ref).float().mean())
                name = f"triton {precision} {cfg['block_m']}x{cfg['block_n']} w{cfg['num_warps']} s{cfg['num_stages']}"
                rows.append({"D": d, "path": name, "ms": t * 1e3, "agree_vs_torch": agree, "peak_gib": peak})
                log(
                    f"{d:>3} {name:>34} {t * 1e3:>9.1f} {flops / t / 1e12:>8.1f} {agree * 100:>13.3f}% {peak:>8.2f}"
                )
        del pts, cents, ref
        torch.cuda.empty_cache()
    RESULTS["speed"] = rows


# --------------------------------------------------------------------------------------------------------


def generated_scene(n: int, seed: int) -> SplatSet:
    """Splats on a few noisy spheres and a ground plane; colour and scale vary smoothly with position."""
    rng = np.random.default_rng(seed)
    s = SplatSet.empty_like_columns(n, sh_degree=0)
    part = rng.integers(0, 4, n)
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    centers = np.array([[0, 1, 0], [2, 0.5, 1], [-2, 0.7, -1], [0, 0, 0]], np.float64)
    radii = np.array([1.0, 0.5, 0.7, 0.0])
    pos = centers[part] + radii[part, None] * u
    plane = part == 3
    pos[plane] = np.c_[
        rng.uniform(-5, 5, plane.sum()), np.zeros(plane.sum()), rng.uniform(-5, 5, plane.sum())
    ]
    pos += rng.normal(scale=0.01, size=pos.shape)
    s.positions[:] = pos
    s.f_dc[:] = np.sin(pos * 1.7) + rng.normal(scale=0.1, size=pos.shape)
    s.log_scales[:] = -4 + 0.3 * np.cos(pos * 0.9) + rng.normal(scale=0.3, size=pos.shape)
    s.opacity_logits[:] = rng.normal(1.0, 1.5, n)
    q = rng.normal(size=(n, 4))
    s.rotations[:] = q / np.linalg.norm(q, axis=1, keepdims=True)
    return s


def neighbour_distance(features: np.ndarray, order: np.ndarray, width: int) -> float:
    """Mean squared L2 distance between horizontal and vertical grid neighbours (row-major, width ``width``)."""
    n = len(order)
    grid = np.zeros((-(-n // width) * width, features.shape[1]), np.float32)
    grid[:n] = features[order]
    valid = np.arange(len(grid)) < n
    g = grid.reshape(-1, width, features.shape[1])
    v = valid.reshape(-1, width)
    dh = ((g[:, 1:] - g[:, :-1]) ** 2).sum(-1)[v[:, 1:] & v[:, :-1]]
    dv = ((g[1:] - g[:-1]) ** 2).sum(-1)[v[1:] & v[:-1]]
    return float(np.concatenate([dh, dv]).mean())


def morton_order(positions: np.ndarray) -> np.ndarray:
    """10-bit-per-axis Morton order (comparison only; the product uses sogs_compressor.order.morton)."""
    lo, hi = positions.min(0), positions.max(0)
    q = np.minimum(1023, ((positions - lo) * 1024 / np.maximum(hi - lo, 1e-30))).astype(np.uint64)
    code = np.zeros(len(positions), np.uint64)
    for bit in range(10):
        for axis in range(3):
            code |= ((q[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return np.argsort(code, kind="stable")


def section_plas(device: torch.device, sizes: list[int], profile_n: int = 0) -> None:
    log("\n## 4. PLAS (features: plas_features defaults)")
    log(f"{'N':>8} {'break':>7} {'device':>6} {'s':>7} {'random':>8} {'morton':>8} {'plas':>8}")
    rows = []
    for n in sizes:
        scene = generated_scene(n, seed=n)
        feats = plas_features(scene)
        w = plas_grid_side(n)
        base = {
            "random": neighbour_distance(feats, np.random.default_rng(0).permutation(n), w),
            "morton": neighbour_distance(feats, morton_order(scene.positions), w),
        }
        for brk in (1e-4, 1e-3):
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            order = plas_order(feats, seed=0, device=device, improvement_break=brk)
            torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
            ok = bool(np.array_equal(np.sort(order), np.arange(n)))
            nd = neighbour_distance(feats, order, w)
            rows.append({"N": n, "break": brk, "s": elapsed, "plas": nd, "is_permutation": ok, **base})
            log(
                f"{n:>8} {brk:>7.0e} {'cuda':>6} {elapsed:>7.2f} {base['random']:>8.4f} {base['morton']:>8.4f} {nd:>8.4f}"
            )
            if not ok:
                log("   !! result is not a permutation of 0..N-1")
    # CPU vs CUDA agreement on a small scene
    n = 20000
    feats = plas_features(generated_scene(n, seed=1))
    start = time.perf_counter()
    on_cpu = plas_order(feats, seed=3, device="cpu", improvement_break=1e-3)
    t_cpu = time.perf_counter() - start
    on_gpu = plas_order(feats, seed=3, device=device, improvement_break=1e-3)
    w = plas_grid_side(n)
    agree = {
        "N": n,
        "cpu_s": t_cpu,
        "same_position_fraction": float((on_cpu == on_gpu).mean()),
        "nd_cpu": neighbour_distance(feats, on_cpu, w),
        "nd_gpu": neighbour_distance(feats, on_gpu, w),
    }
    log(
        f"cpu vs cuda, N={n}: same position {agree['same_position_fraction'] * 100:.1f}%, neighbour distance "
        f"{agree['nd_cpu']:.4f} (cpu, {t_cpu:.1f} s) vs {agree['nd_gpu']:.4f} (cuda)"
    )
    RESULTS["plas"] = rows
    RESULTS["plas_cpu_vs_cuda"] = agree
    if profile_n:
        profile_plas(device, profile_n)


def profile_plas(device: torch.device, n: int) -> None:
    """Steps, time per step and the top CUDA kernels of one PLAS run (break 1e-3)."""
    import sogs_compressor.order.plas as plas_module

    feats = plas_features(generated_scene(n, seed=n))
    steps = {"n": 0}
    original = plas_module.plas_step

    def counting_step(*args, **kwargs):
        steps["n"] += 1
        return original(*args, **kwargs)

    plas_module.plas_step = counting_step
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            start = time.perf_counter()
            plas_order(feats, seed=0, device=device, improvement_break=1e-3)
            torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
    finally:
        plas_module.plas_step = original
    log(
        f"\nPLAS profile N={n}: {steps['n']} steps, {elapsed:.2f} s under the profiler, {elapsed / steps['n'] * 1e3:.3f} ms/step"
    )
    log(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=50))
    RESULTS["plas_profile"] = {"N": n, "steps": steps["n"], "s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--sections", default="correctness,lloyd,speed,plas")
    parser.add_argument("--lloyd-n", type=int, default=1_000_000)
    parser.add_argument("--lloyd-k", type=int, default=16384)
    parser.add_argument("--speed-n", type=int, default=4_000_000)
    parser.add_argument("--speed-k", type=int, default=65536)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--plas-sizes", default="100000,1000000")
    parser.add_argument("--plas-profile-n", type=int, default=1_000_000, help="0: no profile")
    args = parser.parse_args()
    device = torch.device("cuda", 0)
    if not triton_available(device):
        sys.exit("needs a CUDA GPU and triton")
    import triton

    RESULTS["env"] = {
        "gpu": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "triton": triton.__version__,
    }
    log(f"# {RESULTS['env']}")
    sections = args.sections.split(",")
    started = time.perf_counter()
    if "correctness" in sections:
        section_correctness(device)
    if "lloyd" in sections:
        section_lloyd(device, args.lloyd_n, args.lloyd_k)
    if "speed" in sections:
        section_speed(device, args.speed_n, args.speed_k, sweep=not args.no_sweep)
    if "plas" in sections:
        section_plas(device, [int(s) for s in args.plas_sizes.split(",") if s], args.plas_profile_n)
    RESULTS["total_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(RESULTS, indent=1))
    log(f"\ntotal {RESULTS['total_s']:.1f} s")


if __name__ == "__main__":
    main()
