"""SH palette (``shN``) policy: how many entries to cluster into, and in which order to store them.

Size: ``st`` is splat-transform's rule (16,384 entries for a 26,895-splat scene); ``auto`` ties the palette to
the splat count (``n / AUTO_SPLATS_PER_ENTRY`` in whole rows of 64, capped by the format's 65,536). Measured
(bench/SIZE.md): the rendered picture is very sensitive to SH error, so ``auto`` saves a third of the bytes of
flowers_3_0 but renders well below splat-transform's content PSNR; ``st`` stays the default and ``auto`` is an
explicit size-first choice.

Weights: the k-means weights each splat's squared SH error by its on-screen footprint (``palette_weights``), so
the entries go where colour error shows; the centroid values' 256-entry codebook is rate-aware, weighted by the
footprint each entry serves (``sog.encode.encode_sh_palette``).

Order: ``frequency`` (most used entries first: small label values, a mostly constant high byte) is the default;
``pca`` (entries along the centroids' first principal axis, so that neighbouring texels of the centroid texture
hold similar values) was measured no smaller (within 0.3%).
"""

from __future__ import annotations

import numpy as np
import torch

from sogs_compressor.options import PALETTE_ORDERS as ORDERS
from sogs_compressor.options import PALETTE_POLICIES as POLICIES
from sogs_compressor.quantize.codebook_rd import FOOTPRINT_LOG_LIMIT, NON_FINITE_LOG_SCALE, footprints
from sogs_compressor.quantize.kmeans import palette_size_rule

MAX_ENTRIES = 65536
"""Labels are 16-bit (R + 256 G)."""

AUTO_SPLATS_PER_ENTRY = 8
"""``auto`` palette: one entry per this many splats (bench/SIZE.md, palette sweep)."""

AUTO_MIN_ENTRIES = 256
"""Below this an ``auto`` palette is not smaller than it needs to be: tiny scenes keep one entry a splat."""


def palette_size(count: int, policy: str = "auto") -> int:
    """Entries to cluster ``count`` splats' SH into (0 when there are no splats).

    ``st``: splat-transform's rule (formats.md 2.8). ``auto``: ``count / AUTO_SPLATS_PER_ENTRY`` rounded up to a
    whole row of 64 entries, at least ``AUTO_MIN_ENTRIES``, at most ``count`` and 65,536.
    """
    if policy not in POLICIES:
        raise ValueError(f"palette policy must be one of {POLICIES}, not {policy!r}")
    if count < 1:
        return 0
    if policy == "st":
        return palette_size_rule(count)
    entries = -(-count // AUTO_SPLATS_PER_ENTRY)
    entries = -(-entries // 64) * 64
    return int(min(MAX_ENTRIES, count, max(entries, AUTO_MIN_ENTRIES)))


WEIGHT_CAP_QUANTILE = 0.999
"""Footprints above this quantile count as this quantile's: a few huge splats (floaters, sky) cannot claim
whole clusters of their own (measured within noise of the uncapped weights, bench/SIZE.md)."""


WEIGHT_FLOOR = 1e-6
"""Smallest weight (relative to the median footprint): every cluster and codebook group keeps a defined mean."""

WEIGHT_CEILING = 1e12
"""Largest weight (relative to the median footprint), far above any real scene's capped ratio: hostile scales
(a scene of splats 1e-35 wide and a few 1e34 wide) would otherwise give weights beyond float32."""


def palette_weights(
    log_scales: np.ndarray, opacity_logits: np.ndarray, device: torch.device | None = None
) -> np.ndarray:
    """float32 (N,) k-means weight of each splat's SH row: its footprint over the median footprint, capped.

    A splat's SH error changes the image about in proportion to the pixels it covers times its opacity, so the
    weight is that footprint itself (linear; measured on 30K-splat scenes at 12,000 entries, rendered content
    PSNR: unweighted 40.4 / 39.0 / 46.0 dB, log1p of the footprint 42.0 / 42.8, the footprint 42.8 / 45.0 / 50.3,
    bench/SIZE.md). At least ``WEIGHT_FLOOR``, at most ``WEIGHT_CEILING``; all splats weigh the same when the
    median footprint is 0.
    ``device`` (CUDA): computed there (a few ms instead of ~0.1 s per million splats on the host).
    """
    if device is None or device.type == "cpu" or log_scales.shape[0] == 0:
        footprint = footprints(log_scales, opacity_logits)
        if footprint.size == 0:
            return footprint
        cap, median = np.quantile(footprint, [WEIGHT_CAP_QUANTILE, 0.5])
    else:
        scales = torch.from_numpy(np.ascontiguousarray(log_scales)).to(device)
        scales = torch.where(torch.isfinite(scales), scales, torch.full_like(scales, NON_FINITE_LOG_SCALE))
        two_largest = scales.sum(dim=1) - scales.min(dim=1).values
        alpha = torch.sigmoid(torch.from_numpy(np.ascontiguousarray(opacity_logits)).to(device).float())
        exponent = two_largest.clamp(-FOOTPRINT_LOG_LIMIT, FOOTPRINT_LOG_LIMIT)
        footprint = torch.nan_to_num(alpha * torch.exp(exponent), nan=0.0)  # the device twin of ``footprints``
        ranked = torch.sort(footprint).values
        n = ranked.shape[0]
        cap, median = (_quantile_sorted(ranked, q, n) for q in (WEIGHT_CAP_QUANTILE, 0.5))
        footprint = footprint.cpu().numpy()
    if not median > 0:
        return np.ones_like(footprint)
    with np.errstate(over="ignore"):  # footprints span up to e^160 (and a tiny opacity): the ceiling bounds that
        return np.clip(footprint / median, WEIGHT_FLOOR, min(cap / median, WEIGHT_CEILING)).astype(np.float32)


def _quantile_sorted(ranked: torch.Tensor, q: float, n: int) -> float:
    """numpy's default (linear) quantile of sorted values."""
    position = q * (n - 1)
    low = int(position)
    high = min(low + 1, n - 1)
    return float(ranked[low]) + (position - low) * (float(ranked[high]) - float(ranked[low]))


FIRST_USE_MAX_SPLATS_PER_ENTRY = 3
"""``auto`` order: ``first-use`` below this many splats per entry, ``frequency`` from it on. Measured (bench/SIZE.md):
first-use saves 15-22% of the label texture (1.1-1.8% of the file) at 1.6-2.4 splats per entry (30K-splat
scenes), costs 0.4% of the file at 3.7 (gen-30k-sh3, 8,192 entries) and 0.2-0.3% at 15 (1M splats, 65,536)."""


def order_palette(centroids: np.ndarray, labels: np.ndarray, order: str = "pca") -> tuple[np.ndarray, np.ndarray]:
    """Reorder palette entries (dropping unused ones) and remap the labels to match.

    ``auto``: ``first-use`` for palettes with fewer than ``FIRST_USE_MAX_SPLATS_PER_ENTRY`` splats per entry,
    else ``frequency``.
    ``frequency``: most used first (small label values, mostly-constant high byte).
    ``first-use``: in the order the splats (already in their storage order) first use them, so a splat's label
    is often its predecessor's plus one: smaller label textures (bench/SIZE.md).
    ``pca``: along the centroids' first principal axis (similar entries side by side).
    """
    if order not in ORDERS:
        raise ValueError(f"palette order must be one of {ORDERS}, not {order!r}")
    centroids = np.asarray(centroids)
    labels = np.asarray(labels)
    if order == "auto":
        few = labels.shape[0] < FIRST_USE_MAX_SPLATS_PER_ENTRY * centroids.shape[0]
        order = "first-use" if few else "frequency"
    counts = np.bincount(labels, minlength=centroids.shape[0])
    if order == "frequency":
        permutation = np.argsort(-counts, kind="stable")
    elif order == "first-use":
        first = np.full(centroids.shape[0], labels.shape[0], np.int64)
        np.minimum.at(first, labels, np.arange(labels.shape[0]))
        permutation = np.argsort(first, kind="stable")
    else:
        permutation = np.argsort(principal_projection(centroids, counts), kind="stable")
    permutation = permutation[counts[permutation] > 0]
    remap = np.full(centroids.shape[0], -1, np.int64)
    remap[permutation] = np.arange(permutation.shape[0])
    return np.ascontiguousarray(centroids[permutation]), remap[labels]


def principal_projection(points: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Coordinate of each row along the (weighted) first principal axis; sign fixed so results are stable."""
    x = np.asarray(points, np.float64)
    if x.shape[0] < 2 or x.shape[1] == 0:
        return np.zeros(x.shape[0])
    w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, np.float64)
    total = w.sum()
    if total <= 0:
        w, total = np.ones(x.shape[0]), float(x.shape[0])
    centred = x - (w[:, None] * x).sum(axis=0) / total
    covariance = (centred * w[:, None]).T @ centred / total
    _, vectors = np.linalg.eigh(covariance)
    axis = vectors[:, -1]
    axis = axis if axis[np.argmax(np.abs(axis))] >= 0 else -axis
    return centred @ axis
