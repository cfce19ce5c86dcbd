"""Fused nearest-centroid assignment for k-means on CUDA (Triton).

The plain chunked ``x @ c.T`` + ``argmin`` is bound by writing and re-reading the N x K distance matrix
(~1 TB of traffic per Lloyd iteration at N = 4M, K = 64K). This kernel never writes that matrix: each program
loads one tile of points once, loops over tiles of centroids, computes ``||c||^2 - 2 x.c`` with ``tl.dot``
(tensor cores) and keeps the running minimum and its index in registers. Memory: the (N,) labels plus a
zero-padded, transposed copy of the centroids (D_pad x K_pad floats).

The module imports without Triton (CPU installs); :func:`triton_available` says whether the kernel can run.
With ``TRITON_INTERPRET=1`` set before import, the kernel also runs on CPU tensors through Triton's
interpreter, which is how the tests check it without a GPU.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

try:  # Triton is optional: absent on CPU-only installs.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

from sogs_compressor.triton_support import (  # noqa: F401  (device_key, kernels_runnable: this module's API too)
    device_key,
    interpreting,
    kernels_runnable,
    triton_available,
)

PRECISIONS = ("ieee", "tf32", "tf32x3", "fp16")
"""``tl.dot`` input precisions: ``ieee`` = exact fp32 FMA (no tensor cores), ``tf32`` = tensor cores with
10-bit mantissa inputs, ``tf32x3`` = three tf32 products (about fp32 accuracy, ~3x the tensor-core work),
``fp16`` = points and centroids rounded to float16 (the same 10-bit mantissa as tf32, at twice the tensor-core
rate; products still accumulate in fp32 on top of the fp32 bias). ``fp16`` falls back to ``tf32`` when a value
is beyond FP16_SAFE_MAGNITUDE (SH coefficients never are)."""

FP16_SAFE_MAGNITUDE = 30000.0
"""Largest |value| for which the ``fp16`` path is used (float16 overflows at 65504)."""

DEFAULT_PRECISION = "fp16"
"""Measured on an H200 (bench/NOTES-gpu.md, 2026-11-26): 10 Lloyd iterations at N = 1M, K = 65,536 end within
0.009% (D = 24) / 0.007% (D = 45) of the SSE of exact fp32 assignment with fp16 inputs (tf32: 0.014% / 0.013%;
the rule allows 1%), with fewer near-tie disagreements than tf32, and one assignment at N = 4M takes 75 / 89 ms
against tf32's 153 / 255 ms. The encoded scenes' f_rest errors are the same to five digits."""

MAX_DIM = 256
"""Largest point dimension the kernel accepts (SH palettes use 9, 24 or 45)."""

DEFAULT_CONFIGS = {
    "fp16": {"block_m": 128, "block_n": 64, "num_warps": 4, "num_stages": 3},
    "fp32": {"block_m": 256, "block_n": 64, "num_warps": 8, "num_stages": 3},
}
"""Tile shape and launch settings per input width: the fastest of the six that bench/gpu_kernels.py sweeps, for
D = 24 and 45 (fp16 inputs on an H200: 75 / 89 ms; fp32 inputs (ieee, tf32, tf32x3) on an H100: 151 / 253 ms,
for N = 4M, K = 65,536)."""


SH_DIMS = (9, 24, 45)
"""Point dimensions of the SH palettes (degree 1, 2, 3): the kernel is compiled once per dimension."""

_compiled: dict[tuple[str, int], threading.Event] = {}
"""Per (device, dimension): set once a warm-up compiled (or gave up compiling) the kernel for it."""
_warm_up_lock = threading.Lock()
_WARM_UP_WAIT_S = 120.0


def warm_up(device: torch.device, dims: tuple[int, ...] = SH_DIMS,
            then: tuple[Callable[[torch.device], None], ...] = ()) -> threading.Thread | None:
    """Start CUDA and compile the kernel for ``dims`` in a background thread (each dimension once per process).

    A fresh process (a SageMaker container, a CLI run) otherwise pays the CUDA start-up and one Triton compile per
    SH dimension inside the k-means; started before the scene is read, that work overlaps the read. A kernel call
    for a dimension being compiled waits for that compile (not for the others), so the two never compile side by
    side. ``then``: more warm-ups run in the same thread afterwards (other kernels' compiles). None when the kernel
    cannot run on ``device``.
    """
    device = torch.device(device)
    if not triton_available(device):
        return None
    with _warm_up_lock:
        key = device_key(device)
        todo = [d for d in dict.fromkeys(dims) if (key, d) not in _compiled]
        for dim in todo:
            _compiled[(key, dim)] = threading.Event()
    thread = threading.Thread(target=_compile, args=(torch.device(key), todo, then), name="triton-warm-up",
                              daemon=True)
    thread.start()
    return thread


def _compile(device: torch.device, dims: list[int], then: tuple[Callable[[torch.device], None], ...] = ()) -> None:
    key = device_key(device)
    generator = torch.Generator().manual_seed(0)
    try:
        torch.zeros(1, device=device)  # the CUDA context, also for what runs before the k-means
        for dim in dims:
            points = torch.randn(64, dim, generator=generator).to(device)
            triton_nearest_centroid(points, points[:32].contiguous())
            torch.cuda.synchronize(device)
            _compiled[(key, dim)].set()
    except Exception:  # noqa: BLE001, S110 - a failed warm-up changes nothing: the real call compiles or reports
        pass
    finally:
        for dim in dims:
            _compiled[(key, dim)].set()
    for warm in then:
        try:
            warm(device)
            torch.cuda.synchronize(device)
        except Exception:  # noqa: BLE001, S110 - as above: the real call compiles or reports
            pass


def _wait_for_warm_up(device: torch.device, dim: int) -> None:
    event = _compiled.get((device_key(device), dim)) if _compiled else None
    if event is not None and threading.current_thread().name != "triton-warm-up":
        event.wait(_WARM_UP_WAIT_S)


def padded_dim(d: int) -> int:
    """The power of two >= max(d, 16) that ``tl.dot`` needs as its inner dimension."""
    return max(16, 1 << (max(d, 1) - 1).bit_length())


if triton is not None:

    # n_points varies with the scene: specialized on it (divisible by 16 or not), the warm-up's compile would not
    # serve a scene of another kind, which would then compile again inside its k-means.
    @triton.jit(do_not_specialize=["n_points"])
    def _nearest_centroid_kernel(
        x_ptr,
        ct_ptr,
        bias_ptr,
        out_ptr,
        n_points,
        n_centroids_padded,
        dim,
        stride_x,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_D: tl.constexpr,
        PRECISION: tl.constexpr,
        HALF: tl.constexpr,
    ):
        """One program: BLOCK_M points against every centroid tile; writes BLOCK_M labels.

        Maximizes ``x.c - ||c||^2 / 2`` (same argmin as ``||x - c||^2``). The bias rides in as the dot's fp32
        accumulator, and the running best is kept per (row, column slot) so each tile costs one compare and
        two selects per element; the reduction over the BLOCK_N slots happens once, at the end.
        """
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        dims = tl.arange(0, BLOCK_D)
        cols = tl.arange(0, BLOCK_N)
        row_ok = rows < n_points
        x_offsets = rows.to(tl.int64)[:, None] * stride_x + dims[None, :]
        x = tl.load(x_ptr + x_offsets, mask=row_ok[:, None] & (dims[None, :] < dim), other=0.0)
        if HALF:  # the centroids are stored as float16 already
            x = x.to(tl.float16)

        best = tl.full([BLOCK_M, BLOCK_N], float("-inf"), tl.float32)
        best_start = tl.zeros([BLOCK_M, BLOCK_N], tl.int32)
        for start in range(0, n_centroids_padded, BLOCK_N):
            # Centroids are stored transposed (BLOCK_D x K_pad) and padded, so tiles load unmasked.
            ct = tl.load(ct_ptr + dims[:, None] * n_centroids_padded + (start + cols)[None, :])
            bias = tl.load(bias_ptr + start + cols)  # -||c||^2 / 2, -inf for padding centroids
            acc = tl.broadcast_to(bias[None, :], [BLOCK_M, BLOCK_N])
            score = tl.dot(x, ct, acc=acc, input_precision=PRECISION)
            better = score > best  # strict: an equal score keeps the earlier tile
            best = tl.where(better, score, best)
            best_start = tl.where(better, start, best_start)
        row_best = tl.max(best, axis=1)
        candidate = tl.where(best == row_best[:, None], best_start + cols[None, :], 2147483647)
        label = tl.min(candidate, axis=1)  # lowest index among equal best scores, like torch.argmin
        tl.store(out_ptr + rows, label.to(tl.int64), mask=row_ok)


def _check_inputs(points: torch.Tensor, centroids: torch.Tensor) -> None:
    if points.ndim != 2 or centroids.ndim != 2:
        raise ValueError(
            f"points and centroids must be 2-D, got {tuple(points.shape)} and {tuple(centroids.shape)}"
        )
    if points.shape[1] != centroids.shape[1]:
        raise ValueError(f"dimension mismatch: points have {points.shape[1]}, centroids {centroids.shape[1]}")
    if not 1 <= points.shape[1] <= MAX_DIM:
        raise ValueError(f"point dimension {points.shape[1]} is outside 1..{MAX_DIM}")
    if centroids.shape[0] == 0:
        raise ValueError("no centroids given")
    if points.dtype != torch.float32 or centroids.dtype != torch.float32:
        raise ValueError(f"float32 expected, got {points.dtype} and {centroids.dtype}")
    if points.device != centroids.device:
        raise ValueError(f"points on {points.device} but centroids on {centroids.device}")


def prepare_centroids(
    centroids: torch.Tensor, block_n: int, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Transposed, zero-padded centroids (D_pad, K_pad) in ``dtype`` and the fp32 bias ``-||c||^2 / 2``
    (-inf for padding).

    The bias is computed in fp32 from the unpadded centroids and enters the dot as its fp32 accumulator, so
    only the cross term ``x.c`` carries the reduced tensor-core precision.
    """
    k, d = centroids.shape
    d_pad = padded_dim(d)
    k_pad = -(-k // block_n) * block_n
    ct = torch.zeros((d_pad, k_pad), dtype=dtype, device=centroids.device)
    ct[:d, :k] = centroids.t()
    bias = torch.full((k_pad,), float("-inf"), dtype=torch.float32, device=centroids.device)
    bias[:k] = -0.5 * (centroids * centroids).sum(dim=1)
    return ct, bias


def triton_nearest_centroid(
    points: torch.Tensor,
    centroids: torch.Tensor,
    *,
    precision: str | None = None,
    block_m: int | None = None,
    block_n: int | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
) -> torch.Tensor:
    """Index of the nearest centroid (squared Euclidean) for every point: (N, D) x (K, D) -> (N,) int64.

    Ties go to the lowest centroid index. Rows with NaN get label 0. Runs on CUDA, or on CPU tensors under
    ``TRITON_INTERPRET=1``. ``precision`` None: the module's DEFAULT_PRECISION at call time; launch settings
    left None come from DEFAULT_CONFIGS for the input width.
    """
    if triton is None:
        raise RuntimeError("triton is not installed; use the torch assignment path")
    _check_inputs(points, centroids)
    if points.device.type != "cuda" and not interpreting():
        raise ValueError(
            f"the Triton kernel needs CUDA tensors, got {points.device} (use the torch path on CPU)"
        )
    precision = DEFAULT_PRECISION if precision is None else precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    n, d = points.shape
    if points.device.type == "cuda":
        _wait_for_warm_up(points.device, d)
    labels = torch.empty((n,), dtype=torch.int64, device=points.device)
    if n == 0:
        return labels
    points = points.contiguous()
    half = precision == "fp16" and _fits_half(points, centroids)
    if precision == "fp16":
        precision = "tf32"  # the dot's setting for float32 inputs; float16 inputs ignore it
    config = DEFAULT_CONFIGS["fp16" if half else "fp32"]
    block_m = block_m or config["block_m"]
    block_n = block_n or config["block_n"]
    num_warps = num_warps or config["num_warps"]
    num_stages = num_stages or config["num_stages"]
    ct, bias = prepare_centroids(centroids, block_n, torch.float16 if half else torch.float32)
    grid = (triton.cdiv(n, block_m),)
    _nearest_centroid_kernel[grid](
        points,
        ct,
        bias,
        labels,
        n,
        ct.shape[1],
        d,
        points.stride(0),
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_D=ct.shape[0],
        PRECISION=precision,
        HALF=half,
        num_warps=num_warps,
        num_stages=num_stages,
    )
    return labels


def _fits_half(points: torch.Tensor, centroids: torch.Tensor) -> bool:
    """Whether every value is small enough for float16 (a NaN anywhere: no, and the fp32 path decides)."""
    for values in (points, centroids):
        low, high = torch.aminmax(values)
        if not (float(low) >= -FP16_SAFE_MAGNITUDE and float(high) <= FP16_SAFE_MAGNITUDE):
            return False
    return True


def reference_nearest_centroid(
    points: torch.Tensor,
    centroids: torch.Tensor,
    *,
    dtype: torch.dtype = torch.float64,
    chunk_rows: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute-force labels and squared distances in ``dtype`` (float64 by default), chunked over points.

    The ground truth the kernel is checked against; memory is ``chunk_rows x K`` at a time.
    """
    _check_inputs(points, centroids)
    c = centroids.to(dtype)
    c_norm = (c * c).sum(dim=1)
    labels = torch.empty((points.shape[0],), dtype=torch.int64, device=points.device)
    dists = torch.empty((points.shape[0],), dtype=dtype, device=points.device)
    for start in range(0, points.shape[0], chunk_rows):
        x = points[start : start + chunk_rows].to(dtype)
        d = (x * x).sum(dim=1, keepdim=True) - 2.0 * (x @ c.t()) + c_norm[None, :]
        best, index = d.min(dim=1)
        labels[start : start + chunk_rows] = index
        dists[start : start + chunk_rows] = best.clamp_min(0)
    return labels, dists
