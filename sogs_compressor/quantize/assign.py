"""Nearest-centroid assignment (squared Euclidean) with bounded memory, on CPU or CUDA.

The distance block of a chunk of rows is ``||c||^2 - 2 x.c`` (one ``addmm``; ``||x||^2`` is the same for every
centroid of a row, so the argmin does not need it). Rows are chunked so that this block stays under the device's
budget (``compute_policy.distance_block_rows``): the N x K matrix is never materialized. On CUDA the fused Triton kernel of
``sogs_compressor.quantize.assign_triton`` is used when it is importable and usable.
"""

from __future__ import annotations

import torch

from sogs_compressor.compute_policy import distance_block_rows, triton_assignment

SHORT_BLOCK_ROWS = 64
"""A last block shorter than this joins the block before it. A GEMM of a few rows takes another kernel than a
tall one (MKL: 1-3, 5-7 and 9 rows gave other float32 bits than the same rows inside a tall block), so where a
block boundary falls would otherwise change a distance's last bit, and with it, at a near tie, a label."""


def row_blocks(start: int, stop: int, rows: int) -> list[tuple[int, int]]:
    """[start, stop) in blocks of ``rows`` rows, a short last block joined to the one before it."""
    bounds = list(range(start, stop, max(1, rows))) + [stop]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < SHORT_BLOCK_ROWS:
        del bounds[-2]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def nearest_centroid(
    points: torch.Tensor, centroids: torch.Tensor, chunk_rows: int | None = None
) -> torch.Tensor:
    """Index (int64, shape (N,)) of the nearest centroid of every point, by squared Euclidean distance.

    points: (N, D) float32; centroids: (K, D) float32 on the same device. ``chunk_rows`` overrides the number
    of rows per distance block (default: from the memory budget). An explicit ``chunk_rows`` forces the torch
    path, so tests can compare chunkings; otherwise CUDA uses the Triton kernel when available.
    """
    _check(points, centroids)
    if chunk_rows is None and triton_assignment(points.device):
        from sogs_compressor.quantize.assign_triton import triton_nearest_centroid

        return triton_nearest_centroid(points.contiguous(), centroids.contiguous())
    return nearest_centroid_with_distance(points, centroids, chunk_rows)[0]


def nearest_centroid_with_distance(
    points: torch.Tensor, centroids: torch.Tensor, chunk_rows: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels int64 (N,), squared distances float32 (N,)) of the nearest centroid, torch path only."""
    _check(points, centroids)
    n = points.shape[0]
    rows = chunk_rows if chunk_rows is not None else distance_block_rows(points.device, centroids.shape[0])
    if rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, not {rows}")
    labels = torch.empty(n, dtype=torch.int64, device=points.device)
    dists = torch.empty(n, dtype=points.dtype, device=points.device)
    centroids_t = centroids.t()
    centroid_sq = (centroids * centroids).sum(dim=1)
    for start, stop in row_blocks(0, n, rows):
        x = points[start:stop]
        block = torch.addmm(centroid_sq, x, centroids_t, beta=1.0, alpha=-2.0)
        best, index = block.min(dim=1)
        labels[start:stop] = index
        dists[start:stop] = (best + (x * x).sum(dim=1)).clamp_min_(0.0)
        del block
    return labels, dists


def nearest_centroids_topk(
    points: torch.Tensor, centroids: torch.Tensor, k: int, chunk_rows: int | None = None
) -> torch.Tensor:
    """Indices (int64, (N, k)) of the k nearest centroids of every point, nearest first."""
    _check(points, centroids)
    k = min(k, centroids.shape[0])
    rows = chunk_rows if chunk_rows is not None else distance_block_rows(points.device, centroids.shape[0])
    out = torch.empty(points.shape[0], k, dtype=torch.int64, device=points.device)
    centroids_t = centroids.t()
    centroid_sq = (centroids * centroids).sum(dim=1)
    for start, stop in row_blocks(0, points.shape[0], rows):
        block = torch.addmm(centroid_sq, points[start:stop], centroids_t, beta=1.0, alpha=-2.0)
        out[start:stop] = block.topk(k, dim=1, largest=False, sorted=True).indices
    return out


def _check(points: torch.Tensor, centroids: torch.Tensor) -> None:
    if points.ndim != 2 or centroids.ndim != 2 or points.shape[1] != centroids.shape[1]:
        raise ValueError(f"points {tuple(points.shape)} and centroids {tuple(centroids.shape)} must be (N,D), (K,D)")
    if centroids.shape[0] == 0:
        raise ValueError("no centroids to assign to")
    if points.device != centroids.device:
        raise ValueError(f"points on {points.device} but centroids on {centroids.device}")

