"""k-means for the SOG SH palette (``shN``): raw ``f_rest`` vectors (D = 9, 24 or 45) into up to 65,536 centroids.

Semantics follow splat-transform (formats.md 4.2) but are reproducible: the initial centroids are ``k`` distinct
random points drawn with a seeded CPU ``torch.Generator`` (so CPU and CUDA start from the same points), then
exactly ``iterations`` Lloyd iterations (stopping early only when an iteration changed nothing, which makes
every further one a no-op). Labels come from the last assignment and centroids from the update after it; an
empty cluster is re-seeded with the point currently farthest from its centroid. Centroid sums are
deterministic on CUDA too (sorted segment sums instead of atomics), so the same seed gives the same palette.

Methods:
* ``exact``: at most ``k`` distinct rows (always when N <= k): every distinct row is a centroid, zero error.
* ``flat``: plain Lloyd; each iteration costs N*k*D multiply-adds.
* ``hierarchical``: coarse k-means into C ~ sqrt(k) clusters, a sub-palette per coarse cluster sized by its
  share of the coarse error, then Lloyd iterations in which each point is compared only with the
  sub-palettes of its ``PROBES`` nearest coarse clusters (an inverted-file search): about
  N*(C + PROBES*k/C)*D per iteration instead of N*k*D, i.e. ~100x less at k = 65,536.
``auto`` takes ``flat`` while N*k*D per iteration is below ``compute_policy.FLAT_KMEANS_WORK_LIMIT`` for the device.

Weights (optional, one per row, >= 0): the update step takes each cluster's weighted mean, so the palette spends
its entries where an error costs the most (the SH palette weights each splat by its on-screen footprint,
``codebook_rd.render_weights``: +2-4 dB rendered PSNR at equal size on 30K-splat SH3 scenes, bench/SIZE.md). The
assignment is unchanged (each row's nearest centroid does not depend on its weight); a cluster whose members
all weigh 0 takes their plain mean; an empty cluster is re-seeded with the row of largest weighted error.

Large scenes: when N is more than ``SAMPLE_FACTOR * k`` (and more than ``SAMPLE_MIN_ROWS``), the Lloyd
iterations run on a seeded random sample of that many rows; then every row is assigned once and the centroids
are set to the means of their members. Ten iterations at 4M splats then cost about what they cost at 1M, and the
labels and centroids still satisfy the contract above for every splat.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from sogs_compressor.compute_policy import (
    cluster_sums_by_index_add,
    distance_block_rows,
    flat_kmeans_work_limit,
    probed_search_on_host,
)
from sogs_compressor.errors import InvalidValuesError
from sogs_compressor.quantize.assign import (
    nearest_centroid,
    nearest_centroid_with_distance,
    nearest_centroids_topk,
    row_blocks,
)

METHODS = ("auto", "flat", "hierarchical")

PROBES = 3
"""Coarse clusters whose sub-palettes each point searches in the hierarchical method."""

ERROR_CHUNK_ROWS = 1 << 18
"""Rows per chunk when measuring point-to-centroid errors (bounds the (rows, D) temporaries)."""
SUM_CHUNK_ROWS = 1 << 20
"""Rows per deterministic segment-sum pass (bounds the float64 scratch to ~D * 16 MiB)."""
SAMPLE_FACTOR = 16
SAMPLE_MIN_ROWS = 1 << 20
"""Lloyd iterations run on max(SAMPLE_FACTOR * k, SAMPLE_MIN_ROWS) sampled rows when N is larger."""


@dataclass
class KMeansResult:
    """A palette and the assignment of every row to it.

    centroids: (K', D) float32, K' <= k (centroids no row uses are dropped).
    labels: (N,) int32, each < K' (fits uint16 when K' <= 65,536).
    sse: sum over rows of the squared distance to their centroid.
    iterations: Lloyd iterations run (of the fine level for ``hierarchical``; 0 for ``exact``).
    method: ``exact``, ``flat`` or ``hierarchical``.
    """

    centroids: np.ndarray
    labels: np.ndarray
    sse: float
    iterations: int
    method: str


def palette_size_rule(n: int) -> int:
    """splat-transform's SH palette size for n splats (formats.md 2.8).

    ``min(64, 2**floor(log2(n/1024))) * 1024`` for n >= 1024, else the largest power of two <= n (0 for n = 0).
    """
    if n < 1:
        return 0
    if n >= 1024:
        return min(64, 1 << ((n // 1024).bit_length() - 1)) * 1024
    return 1 << (n.bit_length() - 1)


def kmeans(
    data: np.ndarray,
    k: int,
    iterations: int = 10,
    seed: int = 0,
    device: torch.device | str = "cpu",
    method: str = "auto",
    weights: np.ndarray | None = None,
    progress: Callable[[float], None] | None = None,
) -> KMeansResult:
    """Cluster the rows of ``data`` (N, D) into at most ``k`` centroids; see the module docstring.

    ``weights``: (N,) finite, >= 0, the importance of each row's squared error (None: all equal).
    ``progress(fraction)``: called after each Lloyd iteration (and the final assignment of a sampled run) with
    the share of the planned work done; it is handed no tensor, so it adds no device sync.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, not {k}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, not {iterations}")
    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"data must be (N, D), not {data.shape}")
    device = torch.device(device)
    w = _checked_weights(weights, data.shape[0])

    # Non-finite rows are refused: on a GPU counted there, after the upload the clustering needs anyway (a host
    # pass over every value sat on the critical path); exact_palette's hashes take NaN rows as any others, and a
    # palette found exactly needs no upload.
    exact = exact_palette(data, k)
    x = None if exact is not None else torch.from_numpy(data).to(device)  # no copy on the CPU
    on_host = x is None or x.device.type == "cpu"
    bad = count_non_finite(data) if on_host else int(torch.count_nonzero(~torch.isfinite(x)))
    if bad:
        raise InvalidValuesError(f"k-means input holds {bad} non-finite values; drop those splats first")
    if exact is not None:
        return exact

    w = None if w is None else torch.from_numpy(w).to(device)
    generator = torch.Generator().manual_seed(seed)
    n = data.shape[0]
    sample_rows = max(SAMPLE_FACTOR * k, SAMPLE_MIN_ROWS)
    sampled = n > sample_rows
    train, train_w = x, w
    if sampled:
        rows = _random_rows(n, sample_rows, generator).to(device)
        train, train_w = x[rows], None if w is None else w[rows]
    if method == "auto":
        method = choose_method(train.shape[0], k, data.shape[1], device)
    # planned steps: the Lloyd iterations (twice for the coarse and fine levels), and the sampled run's last pass
    planned = iterations * (1 if method == "flat" else 2) + (1 if sampled else 0)
    step = _step_counter(progress, planned)
    if method == "flat":
        init = train[_random_rows(train.shape[0], k, generator).to(device)]
        centroids, labels, done = lloyd(train, init, iterations, update=weighted_update(train_w), on_iteration=step)
    else:
        centroids, labels, done = hierarchical_lloyd(train, k, iterations, generator, train_w, on_iteration=step)
    if sampled:  # every splat: one assignment, then centroids = (weighted) means of their members
        del train, train_w, labels
        labels = nearest_centroid(x, centroids)
        centroids, _ = update_centroids(x, labels, centroids, w)
        step()
    centroids, labels = _drop_unused(centroids, labels)
    sse = float(point_errors(x, centroids, labels).sum())
    return KMeansResult(
        centroids=centroids.cpu().numpy(),
        labels=labels.to(torch.int32).cpu().numpy(),
        sse=sse,
        iterations=done,
        method=method,
    )


def _step_counter(progress: Callable[[float], None] | None, planned: int) -> Callable[[], None]:
    """A callable that counts one step of ``planned`` and reports the share done to ``progress``."""
    done = [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress(min(1.0, done[0] / max(1, planned)))

    return step


def choose_method(n: int, k: int, dim: int, device: torch.device) -> str:
    """``flat`` while one Lloyd iteration (n*k*dim multiply-adds) is cheap on this device, else ``hierarchical``."""
    limit = flat_kmeans_work_limit(torch.device(device).type)
    return "flat" if n * k * dim <= limit else "hierarchical"


def exact_palette(data: np.ndarray, k: int) -> KMeansResult | None:
    """The palette of distinct rows when there are at most ``k`` of them, else None.

    Re-encoding an already palettized scene (a decoded SOG) lands here and keeps it lossless. A row hash is
    checked first (on prefixes of k + 1 and 4k rows, then on all), so typical data pays one cheap pass.
    """
    n, dim = data.shape
    if n == 0:
        return KMeansResult(np.zeros((0, dim), np.float32), np.zeros(0, np.int32), 0.0, 0, "exact")
    if n > k:
        # Any prefix with more than k distinct rows settles it: the first k + 1 rows do for typical data, a longer
        # prefix for data with repeats, all rows otherwise.
        for rows in (data[:k + 1], data[:4 * k], data):
            if np.unique(_row_hash(rows)).size > k:
                return None
            if rows.shape[0] == n:
                break
    data = data + np.float32(0.0)  # -0.0 -> +0.0, so equal rows are one palette entry (only a small set gets here)
    rows, inverse = np.unique(data, axis=0, return_inverse=True)
    if rows.shape[0] > k:
        return None
    return KMeansResult(
        centroids=np.ascontiguousarray(rows, dtype=np.float32),
        labels=inverse.reshape(-1).astype(np.int32),
        sse=0.0,
        iterations=0,
        method="exact",
    )


def count_non_finite(data: np.ndarray, block_rows: int = 1 << 18) -> int:
    """Number of NaN/inf values, in row blocks (no full-size boolean temporary)."""
    return sum(int(block.size - np.count_nonzero(np.isfinite(block)))
               for block in (data[start:start + block_rows] for start in range(0, data.shape[0], block_rows)))


def _row_hash(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's bits, -0.0 hashed as +0.0 (collisions only merge rows, never split them)."""
    bits = rows.view(np.uint32)
    negative_zero = np.uint32(0x80000000)
    h = np.full(rows.shape[0], 1469598103934665603, dtype=np.uint64)
    prime = np.uint64(1099511628211)
    with np.errstate(over="ignore"):
        for j in range(bits.shape[1]):
            column = bits[:, j].astype(np.uint64)
            column[column == negative_zero] = 0  # one column at a time: no full-size copy of the data
            h = (h ^ column) * prime
    return h


def _checked_weights(weights: np.ndarray | None, n: int) -> np.ndarray | None:
    """Row weights as float32 (N,), or None; ValueError for a wrong shape, non-finite or negative values."""
    if weights is None:
        return None
    w = np.ascontiguousarray(weights, dtype=np.float32).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"{w.shape[0]} weights for {n} rows")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    return w


def weighted_update(weights: torch.Tensor | None, rows: RowsForSums | None = None):
    """``update_centroids`` with these row weights, as ``lloyd``'s ``update``; its iterations share ``rows``
    (a new ``RowsForSums`` when not given)."""
    rows = rows if rows is not None else RowsForSums()
    return lambda x, labels, centroids: update_centroids(x, labels, centroids, weights, rows)


def _random_rows(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` distinct row indices (k <= n), drawn on the CPU so every device gets the same ones."""
    return torch.randperm(n, generator=generator)[:k]


def lloyd(
    x: torch.Tensor,
    centroids: torch.Tensor,
    iterations: int,
    assign=None,
    update=None,
    on_iteration: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Lloyd iterations from ``centroids``: (centroids after the last update, last labels, iterations run).

    ``assign(x, centroids) -> labels`` defaults to the exact nearest centroid and ``update(x, labels,
    centroids) -> (centroids, reseeded)`` to ``update_centroids``. With 0 iterations the labels are the
    nearest initial centroids, which are returned unchanged. ``on_iteration()`` is called after each iteration.
    """
    assign = assign or nearest_centroid
    update = update or update_centroids
    labels = assign(x, centroids)
    previous = None
    done = 0
    while done < iterations:
        if done > 0:
            labels = assign(x, centroids)
        done += 1
        centroids, reseeded = update(x, labels, centroids)
        if on_iteration is not None:
            on_iteration()
        if previous is not None and not reseeded and torch.equal(previous, labels):
            break  # nothing moved: every further iteration would repeat this one
        previous = labels
    return centroids, labels, done


def update_centroids(
    x: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor, weights: torch.Tensor | None = None,
    rows: RowsForSums | None = None,
) -> tuple[torch.Tensor, int]:
    """(Weighted) means of the members of each cluster; empty clusters get the points farthest from their new
    centroid (by weighted squared error when weighted). ``rows``: kept from one call to the next (``RowsForSums``).

    Returns (new centroids, number of clusters re-seeded).
    """
    k = centroids.shape[0]
    if weights is None:
        sums, counts = segment_sums(x, labels, k, rows=rows)
        new = (sums / counts.clamp_min(1).unsqueeze(1)).to(x.dtype)
    else:
        counts = torch.bincount(labels, minlength=k)
        sums, totals = segment_sums(x, labels, k, weights, rows)
        new = sums / totals.clamp_min(torch.finfo(torch.float64).tiny).unsqueeze(1)
        weightless = (totals <= 0) & (counts > 0)
        if bool(weightless.any()):  # every member weighs 0: their plain mean
            plain, _ = segment_sums(x, labels, k)
            new[weightless] = plain[weightless] / counts[weightless].unsqueeze(1)
        new = new.to(x.dtype)
    empty = torch.nonzero(counts == 0).flatten()
    if empty.numel() == 0:
        return new, 0
    errors = point_errors(x, new, labels)
    if weights is not None:
        errors = errors * weights.to(errors.dtype)
    # topk picks distinct points; ties broken by index so CPU and CUDA agree.
    order = torch.argsort(errors, descending=True, stable=True)
    far = order[: empty.numel()]
    new[empty[: far.numel()]] = x[far]
    return new, int(empty.numel())


class RowsForSums:
    """The float64 rows (times their weights) that ``segment_sums`` adds up on the CPU, made once for the Lloyd
    iterations that share them instead of once per iteration: the same values, so the same sums. Making them was
    two thirds of each update's time on the CPU (bench/RESULTS.md, "CPU path")."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._rows: torch.Tensor | None = None

    def of(self, x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        key = (x, weights)
        if self._key is None or self._key[0] is not x or self._key[1] is not weights:
            self._rows = None  # the old rows go before the new ones are made
            self._rows = _float64_rows(x, weights)
            self._key = key
        return self._rows


def _float64_rows(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    rows = x.to(torch.float64)
    return rows if weights is None else rows * weights.to(torch.float64).unsqueeze(1)


def segment_sums(
    x: torch.Tensor, labels: torch.Tensor, k: int, weights: torch.Tensor | None = None,
    rows: RowsForSums | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-cluster float64 sums (k, D), member counts (k,)), deterministic on every device; with ``weights``,
    (per-cluster float64 sums of weight x row, float64 weight totals (k,)).

    CPU ``index_add_`` runs in index order; on CUDA it uses atomics (run-to-run float noise), so there the rows
    are sorted by label and summed by float64 prefix sums instead. ``rows``: the CPU's float64 rows, kept between
    calls with the same ``x`` and ``weights``.
    """
    if weights is None:
        counts = torch.bincount(labels, minlength=k)
        if cluster_sums_by_index_add(x.device):
            sums = torch.zeros(k, x.shape[1], dtype=torch.float64)
            sums.index_add_(0, labels, rows.of(x, None) if rows is not None else _float64_rows(x, None))
            return sums, counts
        return sorted_segment_sums(x, labels, k), counts
    if cluster_sums_by_index_add(x.device):
        sums = torch.zeros(k, x.shape[1], dtype=torch.float64)
        sums.index_add_(0, labels, rows.of(x, weights) if rows is not None else _float64_rows(x, weights))
        return sums, torch.zeros(k, dtype=torch.float64).index_add_(0, labels, weights.to(torch.float64))
    both = sorted_segment_sums(x, labels, k, weights)
    return both[:, :-1], both[:, -1]


def sorted_segment_sums(
    x: torch.Tensor, labels: torch.Tensor, k: int, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-cluster float64 sums (k, D) without atomics: the same bits on every run, on any device.

    Chunks in a fixed order; inside a chunk, rows sorted by label and summed by a float64 prefix scan along each
    (contiguous) column: much faster than a scan down the rows of an (N, D) tensor, and memory stays bounded.
    With ``weights``: sums of weight x row, plus the weight totals as column D (shape (k, D + 1)).
    """
    width = x.shape[1] + (weights is not None)
    sums = torch.zeros(width, k, dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], SUM_CHUNK_ROWS):
        chunk_labels = labels[start : start + SUM_CHUNK_ROWS]
        order = torch.argsort(chunk_labels, stable=True)
        columns = x[start : start + SUM_CHUNK_ROWS][order].to(torch.float64)
        if weights is not None:
            w = weights[start : start + SUM_CHUNK_ROWS][order].to(torch.float64).unsqueeze(1)
            columns = torch.cat([columns * w, w], dim=1)
        columns = columns.t().contiguous()
        prefix = torch.zeros(width, columns.shape[1] + 1, dtype=torch.float64, device=x.device)
        torch.cumsum(columns, dim=1, out=prefix[:, 1:])
        chunk_counts = torch.bincount(chunk_labels, minlength=k)
        ends = torch.cumsum(chunk_counts, dim=0)
        sums += prefix[:, ends] - prefix[:, ends - chunk_counts]
        del columns, prefix
    return sums.t()


def point_errors(x: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Squared distance of every row to its labelled centroid (float64, chunked)."""
    out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], ERROR_CHUNK_ROWS):
        stop = start + ERROR_CHUNK_ROWS
        diff = x[start:stop].to(torch.float64) - centroids[labels[start:stop]].to(torch.float64)
        out[start:stop] = (diff * diff).sum(dim=1)
    return out


def _drop_unused(centroids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove centroids no label refers to (re-seeded in the final update) and renumber the labels."""
    used = torch.bincount(labels, minlength=centroids.shape[0]) > 0
    if bool(used.all()):
        return centroids, labels
    remap = torch.cumsum(used.to(torch.int64), dim=0) - 1
    return centroids[used], remap[labels]


# --- hierarchical (coarse-to-fine, inverted-file) k-means -----------------------------------------------------


def hierarchical_lloyd(
    x: torch.Tensor, k: int, iterations: int, generator: torch.Generator, weights: torch.Tensor | None = None,
    on_iteration: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Coarse k-means, per-cluster sub-palettes, then Lloyd iterations with a probed (inverted-file) search.

    With ``weights`` every level takes weighted means and the sub-palettes follow the weighted coarse error.
    """
    n = x.shape[0]
    coarse_k = max(1, min(k, round(math.sqrt(k))))
    coarse_init = x[_random_rows(n, coarse_k, generator).to(x.device)]
    rows = RowsForSums()  # both levels sum the same rows
    coarse, coarse_labels, _ = lloyd(x, coarse_init, iterations, update=weighted_update(weights, rows),
                                     on_iteration=on_iteration)
    errors = point_errors(x, coarse, coarse_labels)
    if weights is not None:
        errors = errors * weights.to(errors.dtype)
    group_size = torch.bincount(coarse_labels, minlength=coarse_k).cpu().numpy()
    group_error = torch.zeros(coarse_k, dtype=torch.float64, device=x.device)
    group_error.index_add_(0, coarse_labels, errors)  # only sets sizes: float noise is harmless
    alloc = allocate_sub_palettes(group_error.cpu().numpy(), group_size, k)

    chosen, fine_group = _sample_per_group(coarse_labels.cpu(), alloc, generator)
    fine = x[chosen.to(x.device)]
    fine_group = fine_group.to(x.device)
    probes = ProbeLists.build(nearest_centroids_topk(x, coarse, PROBES), coarse_k)

    def assign(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
        return probed_nearest(points, probes, centroids, fine_group)

    def update(points, labels, centroids):
        new, reseeded = update_centroids(points, labels, centroids, weights, rows)
        if reseeded:
            # A re-seeded centroid joins the coarse cluster nearest to its new position.
            moved = torch.nonzero(torch.bincount(labels, minlength=centroids.shape[0]) == 0).flatten()
            fine_group[moved] = nearest_centroid(new[moved], coarse)
        return new, reseeded

    return lloyd(x, fine, iterations, assign, update, on_iteration)


def allocate_sub_palettes(group_error: np.ndarray, group_size: np.ndarray, total: int) -> np.ndarray:
    """Centroids per coarse cluster: proportional to its squared error, at least 1, at most its size.

    High-rate quantization theory gives k_g ~ (n_g sigma_g^2)^(D/(D+2)), i.e. nearly proportional to the
    cluster's error for D >= 9. Largest-remainder rounding; the caps are met by water-filling.
    """
    size = group_size.astype(np.int64)
    cap = size.astype(np.float64)
    total = int(min(total, size.sum()))
    weight = np.where(size > 0, np.maximum(group_error, 0.0), 0.0)
    if weight.sum() <= 0.0:
        weight = size.astype(np.float64)
    floor_ = (size > 0).astype(np.float64)

    def filled(scale: float) -> np.ndarray:
        return np.clip(scale * weight, floor_, cap)

    lo, hi = 0.0, 1.0
    while filled(hi).sum() < total and hi < 1e300:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if filled(mid).sum() < total else (lo, mid)
    share = filled(hi)
    alloc = np.minimum(np.floor(share).astype(np.int64), size)
    alloc = np.maximum(alloc, (size > 0).astype(np.int64))
    # Hand out (or take back) the rounding difference by largest (smallest) remainder, within the caps.
    order = np.argsort(-(share - alloc), kind="stable")
    while alloc.sum() != total:
        step = 1 if alloc.sum() < total else -1
        for g in order if step > 0 else order[::-1]:
            if alloc.sum() == total:
                break
            if (step > 0 and alloc[g] < size[g]) or (step < 0 and alloc[g] > 1):
                alloc[g] += step
    return alloc


def _sample_per_group(
    coarse_labels: torch.Tensor, alloc: np.ndarray, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """alloc[g] distinct random members of each coarse cluster g: (row indices, their cluster)."""
    n = coarse_labels.shape[0]
    perm = torch.randperm(n, generator=generator)
    group = coarse_labels[perm]
    order = torch.argsort(group, stable=True)
    members = perm[order]
    group = group[order]
    sizes = torch.bincount(group, minlength=alloc.size)
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.arange(n) - starts[group]
    keep = rank < torch.from_numpy(alloc)[group]
    return members[keep], group[keep]


@dataclass
class ProbeLists:
    """Every (row, probe) pair of a probe table, grouped by coarse cluster: built once, searched each iteration."""

    rows: int
    probes: int
    order: torch.Tensor  # pair slots (row * probes + j) sorted by coarse cluster
    pair_row: torch.Tensor  # row of each sorted pair
    bounds: list[int]  # pairs of cluster g are order[bounds[g]:bounds[g + 1]]

    @staticmethod
    def build(probes: torch.Tensor, groups: int) -> ProbeLists:
        flat = probes.reshape(-1)
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=groups)
        return ProbeLists(probes.shape[0], probes.shape[1], order, order // probes.shape[1], _bounds(counts))


def probed_nearest(
    x: torch.Tensor, probes: torch.Tensor | ProbeLists, centroids: torch.Tensor, centroid_group: torch.Tensor
) -> torch.Tensor:
    """Nearest centroid of each row among the centroids of the coarse clusters listed in its ``probes`` row."""
    groups = int(centroid_group.max()) + 1
    if isinstance(probes, torch.Tensor):
        probes = ProbeLists.build(probes, max(groups, int(probes.max()) + 1))
    groups = max(groups, len(probes.bounds) - 1)
    n, num_probes = probes.rows, probes.probes
    cent_order = torch.argsort(centroid_group, stable=True)
    cent_bounds = _bounds(torch.bincount(centroid_group, minlength=groups))
    if probed_search_on_host(x.device):
        return _probed_nearest_host(x, probes, centroids, cent_order, cent_bounds, groups)

    best_dist = torch.full((n * num_probes,), float("inf"), dtype=x.dtype, device=x.device)
    best_label = torch.zeros(n * num_probes, dtype=torch.int64, device=x.device)
    for g in range(min(groups, len(probes.bounds) - 1)):
        p0, p1 = probes.bounds[g], probes.bounds[g + 1]
        c0, c1 = cent_bounds[g], cent_bounds[g + 1]
        if p0 == p1 or c0 == c1:
            continue
        candidates = cent_order[c0:c1]
        local, dist = nearest_centroid_with_distance(x[probes.pair_row[p0:p1]], centroids[candidates])
        slots = probes.order[p0:p1]
        best_dist[slots] = dist
        best_label[slots] = candidates[local]
    pick = best_dist.view(n, num_probes).argmin(dim=1, keepdim=True)
    return best_label.view(n, num_probes).gather(1, pick).squeeze(1)


def _probed_nearest_host(x: torch.Tensor, probes: ProbeLists, centroids: torch.Tensor, cent_order: torch.Tensor,
                         cent_bounds: list[int], groups: int) -> torch.Tensor:
    """``probed_nearest`` on the CPU: the same distances and labels (the same ``addmm`` per coarse cluster, the
    same row norms, the same argmin), with fewer small operations per cluster. Each CPU operation wakes the
    thread pool, and with ~10 of them for each of ~256 clusters per iteration that wake-up, not the arithmetic,
    was most of the time (bench/RESULTS.md, "CPU path"): the row norms are computed once per call instead of per
    cluster, and results go to slices of buffers in the probe lists' order, put back in row order once."""
    n, num_probes = probes.rows, probes.probes
    pair_row = probes.pair_row
    row_sq = (x * x).sum(dim=1)[pair_row]  # ||x||^2 of every pair, in the lists' order
    centroid_sq = (centroids * centroids).sum(dim=1)
    sorted_dist = torch.full((n * num_probes,), float("inf"), dtype=x.dtype)
    sorted_label = torch.zeros(n * num_probes, dtype=torch.int64)
    for g in range(min(groups, len(probes.bounds) - 1)):
        p0, p1 = probes.bounds[g], probes.bounds[g + 1]
        c0, c1 = cent_bounds[g], cent_bounds[g + 1]
        if p0 == p1 or c0 == c1:
            continue
        candidates = cent_order[c0:c1]
        candidate_sq, candidates_t = centroid_sq[candidates], centroids[candidates].t()
        # blocks that stay in cache (compute_policy), none short (assign.row_blocks)
        for q0, q1 in row_blocks(p0, p1, distance_block_rows(x.device, c1 - c0)):
            block = torch.addmm(candidate_sq, x[pair_row[q0:q1]], candidates_t, beta=1.0, alpha=-2.0)
            best, local = block.min(dim=1)
            del block
            torch.add(best, row_sq[q0:q1], out=sorted_dist[q0:q1]).clamp_min_(0.0)
            sorted_label[q0:q1] = candidates[local]
    best_dist = torch.empty_like(sorted_dist)
    best_dist[probes.order] = sorted_dist
    best_label = torch.empty_like(sorted_label)
    best_label[probes.order] = sorted_label
    pick = best_dist.view(n, num_probes).argmin(dim=1, keepdim=True)
    return best_label.view(n, num_probes).gather(1, pick).squeeze(1)


def _bounds(counts: torch.Tensor) -> list[int]:
    """Start offsets of consecutive segments of the given sizes, plus the end (host ints)."""
    return [0, *torch.cumsum(counts, 0).tolist()]
