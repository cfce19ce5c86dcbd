"""256-entry 1D codebooks (SOG ``scales``, ``sh0`` and ``shN`` codebooks) that minimize squared error.

Design, for the heavy-tailed pooled columns of trained scenes (log-scales in about [-12, 2], f_dc in [-3, 5]):

1. Keep the finite values and sort them once; prefix sums of ``v`` and ``v^2`` then give the exact squared
   error of any run of sorted values in O(1).
2. Cut the sorted values into ``SEED_BINS`` contiguous bins with splat-transform's blend of quantile and
   uniform positions, then split the bins of largest error until there are ``DP_BINS`` (heavy tails get bins).
3. Optimal partition of those bins into ``k`` groups by dynamic programming on the *exact* data error (not on
   bin centres), vectorized in numpy over a band of group widths: O(k * bins * band).
4. Lloyd refinement on the exact sorted data (midpoint cuts by binary search, means from the prefix sums), which
   moves group edges off the bin grid and never increases the error.

Unlike splat-transform (formats.md 4.1), bins are weighted by their true count, so the objective is the plain
sum of squared errors. Fewer distinct finite values than entries are represented exactly (zero error).

Non-finite values: each infinity present reserves an end entry with a finite sentinel, ``finite_min - 20`` for
-inf and ``finite_max + 20`` for +inf (as splat-transform does: a -inf log-scale of a flat 2DGS splat decodes to
``exp(min - 20)``, effectively flat). NaN takes no part in the codebook and gets label ``size - 1``, as in
splat-transform; callers are expected to drop NaN rows before encoding.
"""

from __future__ import annotations

import numpy as np

INF_MARGIN = 20.0
"""Distance of the +-inf sentinels from the finite range (splat-transform's value)."""

SEED_BINS = 256
"""Bins from the quantile/uniform blend before the heaviest ones are split."""

DP_BINS = 1024
"""Bins the dynamic programme partitions; Lloyd refinement then works on the exact values."""

DP_BAND = 64
"""Initial widest group (in bins) the dynamic programme considers; doubled until no group reaches it."""

LLOYD_MAX_ITERATIONS = 200
"""Cap on refinement passes; each is a binary search of ``size`` cut points, so they are cheap."""


def quantize_1d(values: np.ndarray, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Codebook (float32[size], ascending, all finite) and uint8 labels (shape of ``values``).

    Minimizes the sum of squared errors over the finite values; see the module docstring for infinities/NaN.
    Deterministic: the same values give the same codebook.
    """
    if not 3 <= size <= 256:
        raise ValueError(f"codebook size must be 3..256 (uint8 labels, two sentinel slots), not {size}")
    values = np.asarray(values, dtype=np.float32)
    flat = values.reshape(-1)
    if flat.size == 0:
        return np.zeros(size, np.float32), np.zeros(values.shape, np.uint8)
    codebook = build_codebook(flat, size)
    labels = nearest_codebook_index(values, codebook)
    return codebook, labels


def build_codebook(flat: np.ndarray, size: int, presorted: np.ndarray | None = None) -> np.ndarray:
    """The ascending float32 codebook for a 1D float32 array (the work of ``quantize_1d``).

    ``presorted``: ``flat`` already sorted, when it is all finite (saves the sort).
    """
    finite_mask = np.isfinite(flat)
    if presorted is not None and presorted.size == flat.size:
        finite = presorted
    else:
        finite = np.sort(flat[finite_mask]) if not finite_mask.all() else np.sort(flat)
    has_neg_inf = bool(np.any(flat == -np.inf))
    has_pos_inf = bool(np.any(flat == np.inf))
    lo_slots, hi_slots = int(has_neg_inf), int(has_pos_inf)
    budget = size - lo_slots - hi_slots

    if finite.size == 0:
        centroids = np.zeros(0, np.float64)
    else:
        distinct = _distinct_sorted(finite)
        if distinct.size <= budget:
            centroids = distinct.astype(np.float64)
        else:
            centroids = optimal_centroids(finite, budget)

    low_ref = float(finite[0]) if finite.size else 0.0
    high_ref = float(finite[-1]) if finite.size else 0.0
    parts = []
    if has_neg_inf:
        parts.append([low_ref - INF_MARGIN])
    if centroids.size == 0:
        # No finite value at all: the sentinels alone describe the data (pad with whichever exists, else 0).
        pad = low_ref - INF_MARGIN if has_neg_inf else (high_ref + INF_MARGIN if has_pos_inf else 0.0)
        centroids = np.array([pad])
    parts.append(centroids)
    parts.append(np.full(budget - centroids.size, centroids[-1]))
    if has_pos_inf:
        parts.append([high_ref + INF_MARGIN])
    codebook = np.concatenate(parts).astype(np.float32)
    # float32 rounding of the sentinels can only tie, never reorder; keep the contract explicit anyway.
    return np.maximum.accumulate(codebook)


def nearest_codebook_index(values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """uint8 index of the nearest entry of an ascending codebook, for every value (any shape).

    Uses the mid-points between neighbours like splat-transform's binary search: a value exactly on a mid-point
    goes up, -inf to 0, +inf and NaN to the last entry.
    """
    flat = np.asarray(values).reshape(-1)
    grid = search_grid(codebook, flat.dtype)
    index = np.searchsorted(grid, flat if grid.dtype == flat.dtype else flat.astype(np.float64), side="right")
    index = np.minimum(index, grid.size)  # NaN sorts last: already the last entry
    return index.astype(np.uint8).reshape(np.shape(values))


def search_grid(codebook: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Mid-points between neighbouring entries to search values of ``dtype`` in (side="right").

    For float32 values: v < m exactly when v < (m rounded up to float32), so float32 values search a float32
    grid (faster, and the same comparisons on any device); anything else searches the float64 mid-points.
    """
    codebook = np.asarray(codebook, dtype=np.float64)
    if codebook.ndim != 1 or not 1 <= codebook.size <= 256:
        raise ValueError(f"codebook must be 1..256 entries, got shape {codebook.shape}")
    mids = (codebook[:-1] + codebook[1:]) * 0.5
    if np.dtype(dtype) != np.float32:
        return mids
    mids32 = mids.astype(np.float32)
    low = mids32.astype(np.float64) < mids
    mids32[low] = np.nextafter(mids32[low], np.float32(np.inf))
    return mids32


def _distinct_sorted(sorted_values: np.ndarray) -> np.ndarray:
    """Distinct values of a sorted array (cheaper than ``np.unique``, which would sort again)."""
    keep = np.empty(sorted_values.size, bool)
    keep[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=keep[1:])
    return sorted_values[keep]


class _SortedStats:
    """Prefix sums over sorted values, shifted by their median so that ``S2 - S1^2/n`` keeps its precision.

    With ``sorted_weights`` every sum is weighted (squared error becomes weighted squared error, means weighted
    means); without, every value counts once.
    """

    def __init__(self, sorted_values: np.ndarray, sorted_weights: np.ndarray | None = None) -> None:
        self.values = sorted_values.astype(np.float64)
        self.shift = float(sorted_values[sorted_values.size // 2])
        centred = self.values - self.shift
        if sorted_weights is None:
            self.s0 = np.arange(self.values.size + 1, dtype=np.float64)
            self.s1 = np.concatenate(([0.0], np.cumsum(centred)))
            self.s2 = np.concatenate(([0.0], np.cumsum(centred * centred)))
        else:
            weights = np.asarray(sorted_weights, np.float64)
            self.s0 = np.concatenate(([0.0], np.cumsum(weights)))
            self.s1 = np.concatenate(([0.0], np.cumsum(weights * centred)))
            self.s2 = np.concatenate(([0.0], np.cumsum(weights * centred * centred)))

    def sse(self, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """(Weighted) squared error of each run ``values[start:stop]`` around its own mean (0 for empty runs)."""
        count = self.s0[stop] - self.s0[start]
        s1 = self.s1[stop] - self.s1[start]
        s2 = self.s2[stop] - self.s2[start]
        with np.errstate(invalid="ignore", divide="ignore"):
            err = s2 - np.where(count > 0, s1 * s1 / count, 0.0)
        return np.maximum(err, 0.0)

    def mean(self, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """(Weighted) mean of each run (NaN for empty runs)."""
        count = self.s0[stop] - self.s0[start]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.s1[stop] - self.s1[start]) / count + self.shift


def optimal_centroids(sorted_values: np.ndarray, k: int) -> np.ndarray:
    """``k`` ascending float64 centroids for sorted finite values with more than ``k`` distinct values."""
    stats = _SortedStats(sorted_values)
    edges = blend_bin_edges(stats.values, SEED_BINS)
    edges = split_heavy_bins(stats, edges, DP_BINS)
    groups = _partition_bins(stats, edges, k)
    cuts = np.concatenate(([0], edges[groups], [sorted_values.size]))
    cuts = _split_until(stats, cuts, k)
    centroids = stats.mean(cuts[:-1], cuts[1:])
    return _lloyd_refine(stats, centroids)


def blend_bin_edges(sorted_values: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges (indices into the sorted values) of up to ``bins`` non-empty bins.

    Bin of value i = ``floor(bins * (beta * i/n + (1 - beta) * (v_i - min)/range))`` with splat-transform's
    ``beta = clamp(1 - IQR/range, 0.5, 0.999)``; non-decreasing in i, so every bin is a run of sorted values.
    Equal values are never split across bins (a cut inside a run of ties could not be kept by nearest-entry
    labelling anyway).
    """
    n = sorted_values.size
    v = np.asarray(sorted_values, dtype=np.float64)
    vmin, value_range = v[0], v[-1] - v[0]
    beta = min(0.999, max(0.5, 1.0 - (v[int(n * 0.75)] - v[int(n * 0.25)]) / value_range))

    def position(i: np.ndarray) -> np.ndarray:
        return beta * (i / n) + (1.0 - beta) * ((v[i] - vmin) / value_range)

    # First index of each bin b = 1..bins-1: the first i with bins * position(i) >= b (position is
    # non-decreasing in i), by a vectorized binary search instead of binning all n values.
    target = np.arange(1, bins, dtype=np.float64)
    lo = np.zeros(bins - 1, np.int64)
    hi = np.full(bins - 1, n, np.int64)
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        above = bins * position(np.minimum(mid, n - 1)) >= target
        hi = np.where(above & (lo < hi), mid, hi)
        lo = np.where(~above & (lo < hi), mid + 1, lo)
    edges = np.unique(lo)
    edges = edges[(edges > 0) & (edges < n)]
    return _snap_to_ties(sorted_values, edges)


def split_heavy_bins(stats: _SortedStats, edges: np.ndarray, bins: int) -> np.ndarray:
    """Split the bins of largest squared error at their value mid-point until there are ``bins`` bins.

    Quantile-like bins are far too wide in heavy tails (one bin spanning a whole tail cannot be cut by the
    dynamic programme); balancing the per-bin error keeps every bin small next to the error of a group.
    """
    values = stats.values
    bounds = np.concatenate(([0], edges, [values.size]))
    while bounds.size - 1 < bins:
        start, stop = bounds[:-1], bounds[1:]
        splittable = values[start] < values[stop - 1]
        candidates = np.flatnonzero(splittable)
        if candidates.size == 0:
            break
        take = min(bins - (bounds.size - 1), max(1, candidates.size // 2))
        err = stats.sse(start[candidates], stop[candidates])
        chosen = candidates[np.argpartition(-err, take - 1)[:take]]
        mid = (values[start[chosen]] + values[stop[chosen] - 1]) * 0.5
        # First value above the mid-point: strictly inside the bin, and the start of a run of ties.
        cut = np.searchsorted(values, mid, side="right")
        bounds = np.unique(np.concatenate((bounds, cut)))
    return bounds[1:-1]


def _snap_to_ties(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Move each edge to the start of its run of ties; drop duplicates and an edge at 0."""
    edges = np.unique(np.searchsorted(sorted_values, sorted_values[edges], side="left"))
    return edges[edges > 0]


def _partition_bins(stats: _SortedStats, edges: np.ndarray, k: int) -> np.ndarray:
    """Indices into ``edges`` of the cuts that best split the bins into at most k groups (dynamic programming).

    Groups span at most ``band`` bins, which makes each of the k-1 layers an (bins x band) argmin instead of
    (bins x bins); the band doubles while the best partition still has a group as wide as the band (so only a
    partition that provably did not need wider groups is accepted at a narrower band). Costs are the exact
    squared error of the values in the group, from the prefix sums.
    """
    n = stats.values.size
    bounds = np.concatenate(([0], edges, [n]))
    bins = bounds.size - 1
    groups = min(k, bins)
    band = min(bins, DP_BAND)
    while True:
        cuts, widest = _banded_dp(stats, bounds, groups, band)
        if widest < band or band >= bins:
            return cuts
        band = min(bins, 2 * band)


def _banded_dp(stats: _SortedStats, bounds: np.ndarray, groups: int, band: int) -> tuple[np.ndarray, int]:
    """Best split of bins into ``groups`` groups of at most ``band`` bins: (cut edge indices, widest group)."""
    bins = bounds.size - 1
    j = np.arange(bins)[:, None]
    w = np.arange(band)[None, :]
    rows = np.arange(bins)
    first = j - w  # group = bins first..j, previous groups end at bin first-1
    valid = first >= 0
    cost = stats.sse(bounds[np.maximum(first, 0)], np.broadcast_to(bounds[j + 1], first.shape))
    cost = np.where(valid, cost, np.inf)
    prev_end = np.maximum(first - 1, 0)
    has_prev = first >= 1
    # One group: bins 0..j, if that fits the band.
    best = np.where(rows < band, stats.sse(np.zeros(bins, np.int64), bounds[1:]), np.inf)
    choice = np.zeros((groups, bins), np.int64)
    for m in range(1, groups):
        total = np.where(has_prev, best[prev_end] + cost, np.inf)
        arg = total.argmin(axis=1)
        best = total[rows, arg]
        choice[m] = arg
    if not np.isfinite(best[-1]):
        return np.zeros(0, np.int64), band  # the band is too narrow for any partition
    cuts = []
    widest = 0
    end = bins - 1
    for m in range(groups - 1, 0, -1):
        width = int(choice[m, end]) + 1
        widest = max(widest, width)
        end -= width
        cuts.append(end)  # previous group ends at bin ``end``: cut at edge index ``end``
    widest = max(widest, end + 1)
    return np.array(cuts[::-1], dtype=np.int64), widest


def _split_until(stats: _SortedStats, cuts: np.ndarray, k: int) -> np.ndarray:
    """Add cuts, each at the best place inside the group of largest error, until there are ``k`` groups.

    Only needed when ties leave fewer bins than groups (one value holding most of the data, say).
    """
    values = stats.values
    while cuts.size - 1 < k:
        errors = stats.sse(cuts[:-1], cuts[1:])
        g = int(np.argmax(errors))
        if errors[g] <= 0.0:
            break
        a, b = int(cuts[g]), int(cuts[g + 1])
        # Candidate cut positions: starts of runs of ties strictly inside [a, b).
        inner = a + 1 + np.flatnonzero(values[a + 1 : b] != values[a : b - 1])
        split_err = stats.sse(np.full(inner.size, a), inner) + stats.sse(inner, np.full(inner.size, b))
        s = int(inner[np.argmin(split_err)])
        cuts = np.insert(cuts, g + 1, s)
    return cuts


def _lloyd_refine(stats: _SortedStats, centroids: np.ndarray) -> np.ndarray:
    """Lloyd passes on the exact sorted values until the cuts stop moving (error never increases)."""
    values = stats.values
    n = values.size
    cuts = None
    for _ in range(LLOYD_MAX_ITERATIONS):
        mids = (centroids[:-1] + centroids[1:]) * 0.5
        new_cuts = np.concatenate(([0], np.searchsorted(values, mids, side="left"), [n]))
        if cuts is not None and np.array_equal(new_cuts, cuts):
            break
        cuts = new_cuts
        means = stats.mean(cuts[:-1], cuts[1:])
        centroids = np.where(np.isnan(means), centroids, means)
    return np.sort(centroids)


def codebook_sse(values: np.ndarray, codebook: np.ndarray, labels: np.ndarray | None = None) -> float:
    """Sum of squared errors over the finite values (for tests, benchmarks and reports)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if labels is None:
        labels = nearest_codebook_index(values, codebook)
    recon = np.asarray(codebook, dtype=np.float64)[np.asarray(labels).reshape(-1)]
    finite = np.isfinite(values)
    return float(np.sum((values[finite] - recon[finite]) ** 2))
