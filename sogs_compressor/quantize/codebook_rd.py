"""Rate-aware 256-entry 1D codebooks: trade a little squared error for fewer bits in the label textures.

The MSE-optimal codebook (``codebook.quantize_1d``) spends its 256 entries where the data is dense, so labels
are spread almost uniformly over the entries: ~8 bits of entropy per value, which lossless WebP cannot shrink.
This module solves the entropy-constrained version instead (ECSQ): minimize

    sum of squared errors  +  lam * sum over values of -log2(share of its entry)

over contiguous groups of the sorted values, at most ``size`` entries. ``lam`` is tied to the data by
``rate_weight``: at high rate a scalar quantizer's distortion falls by ``2 ln 2 * D`` per bit, so
``lam = rate_weight * 2 ln 2 * D0`` (``D0`` the MSE of the MSE-optimal codebook) makes ``rate_weight`` scale
free: 1 keeps roughly the MSE-optimal point, 4 accepts ~4x the squared error for ~1 bit less per value.

Algorithm: the same bins as the MSE codebook (quantile/uniform blend, heavy bins split; ~1024 of them), an
exact dynamic programme over bins (O(bins^2)) with a per-entry penalty raised by bisection until at most
``size`` entries are used, then ECSQ Lloyd passes on the exact sorted values: means as entries, and cut points
moved off the mid-points towards the rarer entry by ``lam * (len_hi - len_lo) / (2 (c_hi - c_lo))``. Labels
are the groups themselves (any label is valid for the decoder, which just looks the entry up), so they are not
necessarily the nearest entry. Non-finite input falls back to the MSE codebook (its sentinel handling).
"""

from __future__ import annotations

import math

import numpy as np

from sogs_compressor.quantize.codebook import (
    DP_BINS,
    SEED_BINS,
    _SortedStats,
    blend_bin_edges,
    build_codebook,
    codebook_sse,
    quantize_1d,
    split_heavy_bins,
)
from sogs_compressor.quantize.value_ops import HOST, ValueOps

REFINE_ITERATIONS = 30
"""ECSQ Lloyd passes after the dynamic programme (each is one searchsorted of the cut points)."""

PENALTY_STEPS = 40
"""Precision of the per-entry penalty that brings the entry count under ``size``: 2**-PENALTY_STEPS of its
starting bracket (as many bisection steps would give)."""


def quantize_1d_rd(
    values: np.ndarray, rate_weight: float, size: int = 256, weights: np.ndarray | None = None,
    ops: ValueOps = HOST, order: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Codebook (float32[size], ascending) and uint8 labels (shape of ``values``) minimizing error + rate.

    ``rate_weight`` 0 is the MSE-optimal codebook of ``quantize_1d``; see the module docstring for its scale.
    ``weights`` (shape of ``values``, >= 0): the squared error of each value counts that much (scaled to mean 1,
    so ``rate_weight`` keeps its meaning); see ``render_weights``.
    ``ops``: where the sort and the nearest-entry search run (``value_ops``; every choice gives the same result).
    ``order``: ``ops.stable_argsort`` of the flattened values, when the caller has it already.
    """
    if rate_weight < 0 or not math.isfinite(rate_weight):
        raise ValueError(f"rate_weight must be a finite number >= 0, not {rate_weight}")
    values = np.asarray(values, dtype=np.float32)
    flat = values.reshape(-1)
    if rate_weight == 0 or flat.size == 0 or not np.all(np.isfinite(flat)):
        return quantize_1d(values, size)
    if not 3 <= size <= 256:
        raise ValueError(f"codebook size must be 3..256 (uint8 labels, two sentinel slots), not {size}")
    # One stable sort serves the MSE codebook (it needs the sorted values) and the ECSQ (it needs the order).
    order = ops.stable_argsort(flat) if order is None else order
    ranked = flat[order]
    base_codebook = build_codebook(flat, size, presorted=ranked)
    base_labels = ops.nearest(values, base_codebook)
    w = _unit_mean_weights(weights, flat.size)
    if w is None:
        d0 = codebook_sse(flat, base_codebook, base_labels) / flat.size
    else:
        error = base_codebook[base_labels.reshape(-1)].astype(np.float64) - flat
        d0 = float(np.sum(w * error * error)) / flat.size
    if d0 <= 0:
        # At most ``size`` distinct values (an already-quantized scene): kept exact. Merging such levels was
        # measured to cost far more rendered quality than it saves bytes (bench/SIZE.md, flowers_3_0).
        return base_codebook, base_labels
    lam = rate_weight * 2.0 * math.log(2.0) * d0
    stats = _SortedStats(ranked, None if w is None else w[order])
    cuts = ecsq_partition(stats, lam, size, ops)
    centroids, cuts = ecsq_refine(stats, cuts, lam)
    sorted_labels = np.repeat(np.arange(centroids.size), np.diff(cuts))
    labels = np.empty(flat.size, np.uint8)
    labels[order] = sorted_labels
    codebook = np.concatenate([centroids, np.full(size - centroids.size, centroids[-1])]).astype(np.float32)
    return codebook, labels.reshape(values.shape)


def _unit_mean_weights(weights: np.ndarray | None, size: int) -> np.ndarray | None:
    """Weights as float64 scaled to mean 1 (None: unweighted, also for all-zero or unusable weights)."""
    if weights is None:
        return None
    w = np.asarray(weights, np.float64).reshape(-1)
    if w.size != size:
        raise ValueError(f"{w.size} weights for {size} values")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        return None
    return w * (size / w.sum())


def render_weights(log_scales: np.ndarray, opacity_logits: np.ndarray) -> np.ndarray:
    """Per-splat weights for an attribute's codebook: how much an error in that splat's value shows.

    A splat's footprint is about its opacity times the area of its two largest axes, so the rare big splats
    cover the most pixels, yet squared error gives them few codebook entries (bench/SIZE.md: the tails of the
    log-scale and colour distributions decide the rendered error). ``log1p(a / median a)`` of that footprint
    ``a`` is the weight: it grows with the footprint but only logarithmically, measured best of the weightings
    tried (none, ``a``, ``sqrt(a)``, this): +1.0-1.2 dB content PSNR on guitar and +0.3-0.5 dB on a 30K SH3
    scene at equal bytes. The median is that of the splats given (a random sample estimates it well).
    """
    return footprint_weights(footprints(log_scales, opacity_logits))


def footprint_weights(footprint: np.ndarray) -> np.ndarray:
    """``render_weights`` of splats whose ``footprints`` are given (the median is that of the ones given)."""
    median = float(np.median(footprint)) if footprint.size else 0.0
    if not median > 0:
        return np.ones(footprint.shape, np.float64)
    with np.errstate(over="ignore"):  # a ratio past float32 (hostile scales) is capped at log1p(float32 max)
        return np.minimum(np.log1p(footprint / median), LOG1P_FLOAT32_MAX)


LOG1P_FLOAT32_MAX = np.log1p(np.finfo(np.float32).max)
"""The largest render weight: what a footprint ratio past float32 counts as."""


FOOTPRINT_BLOCK_ROWS = 1 << 20
"""Rows per block when computing footprints (bounds the float64 temporaries to a few tens of MB)."""
NON_FINITE_LOG_SCALE = -30.0
"""What a non-finite log-scale counts as in a footprint: a tiny axis."""
FOOTPRINT_LOG_LIMIT = 80.0
"""Footprint exponents are clipped to +-this, so the result stays a finite, non-zero float32."""


def footprints(log_scales: np.ndarray, opacity_logits: np.ndarray) -> np.ndarray:
    """float32 (N,) on-screen footprint of each splat, up to a common factor: opacity x exp(two largest log-scales).

    Non-finite log-scales count as tiny, and the exponent is capped so the result stays finite.
    """
    n = log_scales.shape[0]
    out = np.empty(n, np.float32)
    for start in range(0, n, FOOTPRINT_BLOCK_ROWS):
        stop = min(n, start + FOOTPRINT_BLOCK_ROWS)
        block = log_scales[start:stop]
        scales = np.where(np.isfinite(block), block, NON_FINITE_LOG_SCALE).astype(np.float64)
        two_largest = scales.sum(axis=1) - scales.min(axis=1)
        with np.errstate(over="ignore"):
            alpha = 1.0 / (1.0 + np.exp(-np.asarray(opacity_logits[start:stop], np.float64)))
        footprint = alpha * np.exp(np.clip(two_largest, -FOOTPRINT_LOG_LIMIT, FOOTPRINT_LOG_LIMIT))
        out[start:stop] = np.nan_to_num(footprint, nan=0.0)
    return out


def ecsq_partition(stats: _SortedStats, lam: float, size: int, ops: ValueOps = HOST) -> np.ndarray:
    """Cut indices (0 .. n, ascending) of at most ``size`` groups of the sorted values, by dynamic programming.

    A per-group penalty is raised until at most ``size`` groups are used; the smallest such penalty is found by
    a grid search that evaluates PENALTY_GRID penalties per dynamic programme (vectorized), narrowing the
    bracket each round to the precision of PENALTY_STEPS bisection steps.
    """
    n = stats.values.size
    edges = split_heavy_bins(stats, blend_bin_edges(stats.values, SEED_BINS), DP_BINS)
    bounds = np.concatenate(([0], edges, [n]))
    costs = _group_costs(stats, bounds, lam)
    if ops.group_counts(costs, np.zeros(1))[0] > size:
        low, high = 0.0, lam * n + stats.sse(np.array([0]), np.array([n]))[0] + 1.0
        precision = (high - low) * 2.0 ** -PENALTY_STEPS
        while high - low > precision:
            grid = np.linspace(low, high, PENALTY_GRID + 2)[1:-1]
            fits = ops.group_counts(costs, grid) <= size
            first_fit = int(np.argmax(fits)) if fits.any() else grid.size
            low = grid[first_fit - 1] if first_fit > 0 else low
            high = grid[first_fit] if first_fit < grid.size else high
        penalty = high
    else:
        penalty = 0.0
    return bounds[_dp_path(costs, penalty)]


PENALTY_GRID = 31
"""Penalties evaluated together per round of the penalty search (each round narrows the bracket 32x)."""


def _group_costs(stats: _SortedStats, bounds: np.ndarray, lam: float) -> np.ndarray:
    """cost[i, j] = sse + lam * count * log2(n / count) of the group of bins i..j-1 (inf where i >= j)."""
    n = float(bounds[-1])
    start, stop = np.meshgrid(bounds, bounds, indexing="ij")
    count = (stop - start).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = stats.sse(np.maximum(start, 0), np.maximum(stop, start)) + lam * count * np.log2(n / count)
    cost[count <= 0] = np.inf
    return cost


def _dp_path(costs: np.ndarray, penalty: float) -> np.ndarray:
    """Indices into the bin bounds of the optimal group boundaries (first 0, last bins) at ``penalty``."""
    bins = costs.shape[0] - 1
    best = np.zeros(bins + 1)
    back = np.zeros(bins + 1, np.int64)
    for j in range(1, bins + 1):
        total = best[:j] + costs[:j, j]
        i = int(np.argmin(total))
        best[j] = total[i] + penalty
        back[j] = i
    path = [bins]
    while path[-1] > 0:
        path.append(int(back[path[-1]]))
    return np.array(path[::-1], np.int64)


def ecsq_refine(stats: _SortedStats, cuts: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """ECSQ Lloyd passes: entries = group means, cuts biased towards rarer entries; (centroids, cuts).

    Empty groups are dropped; passes stop when the cuts stop moving (or after REFINE_ITERATIONS).
    """
    values = stats.values
    n = values.size
    for _ in range(REFINE_ITERATIONS):
        cuts = np.unique(cuts)
        centroids = stats.mean(cuts[:-1], cuts[1:])
        lengths = np.log2(n / np.diff(cuts).astype(np.float64))
        gap = np.maximum(np.diff(centroids), 1e-30)
        thresholds = (centroids[:-1] + centroids[1:]) * 0.5 + lam * (lengths[1:] - lengths[:-1]) / (2.0 * gap)
        new_cuts = np.concatenate(([0], np.searchsorted(values, thresholds, side="left"), [n]))
        new_cuts = np.maximum.accumulate(new_cuts)
        if np.array_equal(new_cuts, cuts):
            break
        cuts = new_cuts
    cuts = np.unique(cuts)
    return stats.mean(cuts[:-1], cuts[1:]), cuts


def rate_bits(labels: np.ndarray) -> float:
    """Zeroth-order entropy of the labels in bits per value (what the rate term models)."""
    counts = np.bincount(np.asarray(labels).reshape(-1))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


# --- positions: fewer bits where the picture cannot tell -----------------------------------------------------

TRANSLUCENT_ALPHA = (0.3, 0.1)
"""Opacities below which a splat's position keeps one, then two, fewer bits (faint splats move the picture less:
the image change of moving a splat is proportional to its opacity, bench/SIZE.md)."""


def position_bits(opacity_logits: np.ndarray, bits: int) -> np.ndarray:
    """Bits of the 16-bit position grid kept per splat: ``bits`` for opaque splats, fewer for faint ones.

    ``bits`` 16 keeps every position exactly as the format stores it (no splat loses a bit).
    """
    if not 8 <= bits <= 16:
        raise ValueError(f"position bits must be 8..16, not {bits}")
    kept = np.full(np.shape(opacity_logits), bits, np.int64)
    if bits == 16:
        return kept
    with np.errstate(over="ignore"):
        alpha = 1.0 / (1.0 + np.exp(-np.asarray(opacity_logits, np.float64)))
    for threshold in TRANSLUCENT_ALPHA:
        kept -= alpha < threshold
    return kept


POSITION_SHIFT = 0.05
"""Largest move of an opaque splat by the coarsened position grid, as a fraction of its size; a faint one may
move 1 / alpha times as far (``size_position_bits``). A splat's image changes with its move over its size, times
its opacity, so a fixed number of grid bits is too coarse where the grid's cell is large next to the splats
(scenes of large extent) and wasteful where it is small. The value was chosen from rendered quality and bytes on
real and tiled real scenes (bench/SIZE.md, "Position precision by size")."""
POSITION_SHIFT_BY_OPACITY = True
"""Whether the move allowed grows as the splat's opacity falls (``size_position_bits``'s ``opacity_logits``)."""


def size_position_bits(positions: np.ndarray, log_scales: np.ndarray, mins, maxs,
                       shift: float = POSITION_SHIFT, opacity_logits: np.ndarray | None = None) -> np.ndarray:
    """Fewest bits of the 16-bit grid per splat that keep its rounding move within ``shift`` x its size.

    Rounding to multiples of ``2**d`` cells moves a coordinate by up to ``2**(d - 1)`` cells; a cell of the
    format's log-space grid is ``(max - min) / 65535`` there, ``(|x| + 1)`` times that in world units (the
    inverse of ``sign(x) log(|x| + 1)``), the largest over the three axes. The size is the middle axis
    (``exp`` of the middle log-scale): the long axis would let thin splats move across themselves, the short one
    would keep every bit of flat ones. So ``d <= 1 + log2(shift * size / cell)``. With ``opacity_logits`` the
    move allowed is ``shift * size / alpha`` (the image change of a move is proportional to the opacity too).
    """
    allowance = size_drop_allowance(positions, log_scales, mins, maxs, shift, opacity_logits)
    return 16 - np.clip(np.floor(allowance), 0, 16).astype(np.int64)


def size_drop_allowance(positions: np.ndarray, log_scales: np.ndarray, mins, maxs,
                        shift: float = POSITION_SHIFT, opacity_logits: np.ndarray | None = None) -> np.ndarray:
    """``1 + log2(shift * size / cell [/ alpha])`` per splat (float64; ``size_position_bits`` floors it)."""
    cell = (np.asarray(maxs, np.float64) - np.asarray(mins, np.float64)) / 65535.0
    world = ((np.abs(np.asarray(positions, np.float64)) + 1.0) * cell).max(axis=1)
    middle = np.sort(np.asarray(log_scales, np.float64), axis=1)[:, 1]
    with np.errstate(divide="ignore", over="ignore"):  # a zero cell or alpha allows any rounding
        allowance = ((math.log2(shift) + middle / math.log(2.0)) - np.log2(world)) + 1.0
        if opacity_logits is not None:
            alpha = 1.0 / (1.0 + np.exp(-np.asarray(opacity_logits, np.float64)))
            allowance = allowance - np.log2(alpha)
    return allowance


def coarsen_grid(low: np.ndarray, high: np.ndarray, kept_bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Round 16-bit grid values (split into low/high bytes, (N, 3)) to multiples of ``2**(16 - kept_bits)``.

    The low byte then has constant low bits, which lossless WebP codes almost for free; the decoder is unchanged.
    """
    q = high.astype(np.int64) * 256 + low.astype(np.int64)
    step = (1 << (16 - np.asarray(kept_bits, np.int64)))[:, None]
    q = np.minimum(np.rint(q / step).astype(np.int64) * step, 65535)
    return (q & 0xFF).astype(np.uint8), (q >> 8).astype(np.uint8)
