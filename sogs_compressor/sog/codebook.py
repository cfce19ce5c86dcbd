"""Codebook-indexed values (scales, sh0 colour, the SH palette's centroids; formats.md 2.6-2.8): a 256-entry
codebook and each value's 8-bit label, built on the host or with a device's passes over all values, and decoded.

The codebook's own build (sorting, the rate-aware dynamic programme, the per-splat error bound) lives in
``quantize/``; here is how the codec calls it, with a sample for large inputs, and the device twins of its
passes over all values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from sogs_compressor.quantize import codebook_rd as rd
from sogs_compressor.quantize.bound import bound_codebook
from sogs_compressor.quantize.codebook import build_codebook, search_grid
from sogs_compressor.quantize.value_ops import HOST, ValueOps, dp_group_counts

if TYPE_CHECKING:
    import torch

CODEBOOK_SAMPLE = 1 << 20
"""Pooled values above which a codebook is built from a seeded sample of this many (plus the extremes)."""
EXACT_ENTRIES = 256
"""Columns with at most this many distinct values keep them exactly (the codebook's size)."""
MIN_CODEBOOK_ENTRIES = 16
"""Entries the codebook keeps when the bound reserves the others (past that, the bound is given up)."""


def decode_codebook(indices: np.ndarray, codebook) -> np.ndarray:
    return np.asarray(codebook, np.float32)[indices]


def codebook_for(
    values: np.ndarray, rate_weight: float, seed: int, ops: ValueOps = HOST,
    sample_size: int | None = None, weights: Callable[[np.ndarray], np.ndarray] | None = None,
    window: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """256-entry codebook and labels of ``values``; large inputs build the codebook from a sample.

    Building costs O(n log n); a million values already pin down 256 levels, so for millions of splats the
    codebook comes from a seeded sample of ``sample_size`` (default ``CODEBOOK_SAMPLE``) values (with the minimum
    and maximum, so the range is covered) and every value then takes its nearest entry, as with rate weight 0 at
    any size. ``ops``: where the passes over all values run (``quantize/value_ops.py``; the same codebook and
    labels on the host and on a device).
    ``weights(rows)``: the error weight of each given row of ``values`` (every value of
    a row shares it) for the rate-aware codebook (``codebook_rd.quantize_1d_rd``); asked only for the rows the
    codebook is built from.
    ``window``: (below, above): every finite value must decode within ``[v - below, v + above]``
    (``quantize/bound.py``, the per-splat error bound); when the bound needs entries the codebook has used, it is
    rebuilt with that many fewer entries (reserved for the values the bound moves).
    """
    if window is None:
        return _codebook_of_size(values, rate_weight, seed, ops, sample_size, weights, EXACT_ENTRIES)
    reserve = 0
    while True:
        codebook, labels = _codebook_of_size(values, rate_weight, seed, ops, sample_size, weights,
                                             EXACT_ENTRIES - reserve)
        bounded, bounded_labels, missing = bound_codebook(values, codebook, labels, *window, size=EXACT_ENTRIES,
                                                          ops=ops)
        if missing == 0:
            return bounded, bounded_labels
        if reserve + missing > EXACT_ENTRIES - MIN_CODEBOOK_ENTRIES:
            return bounded, bounded_labels  # not coverable in 256 entries: best effort, the reports count the rest
        reserve += max(missing, reserve)


def _codebook_of_size(
    values: np.ndarray, rate_weight: float, seed: int, ops: ValueOps,
    sample_size: int | None, weights: Callable[[np.ndarray], np.ndarray] | None, size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``codebook_for`` without the bound, with ``size`` entries (``EXACT_ENTRIES`` unless the bound reserves)."""
    flat = values.reshape(-1)
    sample_size = CODEBOOK_SAMPLE if sample_size is None else sample_size
    whole = flat.size <= sample_size
    if flat.size == 0 or not np.all(np.isfinite(flat)):
        return rd.quantize_1d_rd(values, rate_weight, size)  # the MSE codebook's sentinels for infinities
    per_row = flat.size // values.shape[0]
    if whole and rate_weight == 0:
        codebook = build_codebook(flat.astype(np.float32, copy=False), size)  # quantize_1d's; labels below
    elif whole:  # the rate-aware labels are its own groups, not the nearest entries
        value_weights = None if weights is None else np.repeat(weights(np.arange(values.shape[0])), per_row)
        return rd.quantize_1d_rd(values, rate_weight, size, weights=value_weights, ops=ops)
    else:
        rng = np.random.default_rng(seed)
        picked = np.concatenate([rng.integers(0, flat.size, sample_size), [flat.argmin(), flat.argmax()]])
        sample = flat[picked]
        order = ops.stable_argsort(sample) if rate_weight > 0 else None
        ranked = sample[order] if order is not None else np.sort(sample)
        if _distinct_count(ranked) <= EXACT_ENTRIES and np.unique(flat).size <= EXACT_ENTRIES:
            # Already quantized (a re-encoded SOG): a sample can miss a rare value; the whole set is kept exact.
            return rd.quantize_1d_rd(values, rate_weight)
        if rate_weight == 0:
            codebook = build_codebook(sample, size, presorted=ranked)
        else:
            codebook, _ = rd.quantize_1d_rd(sample, rate_weight, size, ops=ops, order=order,
                                            weights=None if weights is None else weights(picked // per_row))
    return codebook, ops.nearest(values, codebook)


def _distinct_count(ranked: np.ndarray) -> int:
    """Distinct values of a sorted array (what ``np.unique(...).size`` gives, without sorting again)."""
    return int(np.count_nonzero(ranked[1:] != ranked[:-1])) + 1 if ranked.size else 0


# --- device: labels (codebook.nearest_codebook_index) and the builds' passes (quantize/value_ops.py) ----------

def value_ops_for(device: torch.device | None) -> ValueOps:
    """The codebook builds' passes over all values: on ``device`` (same results), or numpy when None."""
    return HOST if device is None else DeviceOps(device)


def nearest_codebook_index_on_device(values: np.ndarray, codebook: np.ndarray, device: torch.device) -> np.ndarray:
    """``codebook.nearest_codebook_index`` on ``device``: uint8 index of the nearest entry, same ties.

    The mid-points are built on the host exactly as the reference builds them (including its float32 search
    grid for float32 values), so ``torch.searchsorted(right=True)`` makes the same comparisons as numpy's
    ``side="right"``; NaN, which numpy sorts last, is mapped to the last entry explicitly.
    """
    import torch

    from sogs_compressor.sog.device_arrays import to_device

    flat = np.asarray(values).reshape(-1)
    grid = search_grid(codebook, flat.dtype)
    dtype = torch.float32 if grid.dtype == np.float32 else torch.float64
    v = to_device(flat, device, dtype)
    index = torch.searchsorted(to_device(grid, device, dtype), v, right=True)
    last = grid.size  # the codebook's last index
    index = torch.where(torch.isnan(v), last, torch.clamp(index, max=last))
    return index.to(torch.uint8).cpu().numpy().reshape(np.shape(values))


class DeviceOps:
    """``value_ops.HostOps`` on a torch device: the same arrays (a stable sort is unique; the search and the error
    bound's check are exact comparisons of the same float32/float64 values)."""

    def __init__(self, device: torch.device) -> None:
        import torch

        self.device = torch.device(device)
        self.kernel_usable = True

    def stable_argsort(self, flat: np.ndarray) -> np.ndarray:
        import torch

        # + 0.0 turns -0.0 into +0.0: numpy's comparison sort holds them equal (input order kept), while a radix
        # sort of the bit patterns would put -0.0 first.
        keys = torch.from_numpy(np.ascontiguousarray(flat)).to(self.device) + 0.0
        return torch.sort(keys, stable=True).indices.cpu().numpy()

    def nearest(self, values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
        return nearest_codebook_index_on_device(values, codebook, self.device)

    def group_counts(self, costs: np.ndarray, penalties: np.ndarray) -> np.ndarray:
        from sogs_compressor.compute_policy import triton_codebook_dp

        if self.kernel_usable and triton_codebook_dp(self.device, costs.shape[0]):
            from sogs_compressor.quantize import dp_triton  # imports Triton: only on the device path

            try:
                if dp_triton.kernel_ready(self.device):
                    return dp_triton.group_counts(costs, penalties, self.device)
            except Exception:  # noqa: BLE001 - e.g. a compiler that rejects the kernel: the host gives the same
                self.kernel_usable = False
        return dp_group_counts(costs, penalties)

    def violations(self, values: np.ndarray, codebook: np.ndarray, labels: np.ndarray, below: float,
                   above: float) -> np.ndarray:
        import torch

        from sogs_compressor.sog.device_arrays import to_device

        flat = np.asarray(values).reshape(-1)
        v = torch.from_numpy(np.ascontiguousarray(flat)).to(self.device).double()  # exact, as astype(float64)
        entries = to_device(np.asarray(codebook, np.float64), self.device)
        index = to_device(np.asarray(labels, np.uint8).reshape(-1), self.device, torch.uint8).long()
        error = entries[index] - v
        outside = ((error > above) | (error < -below)) & torch.isfinite(v)
        return torch.nonzero(outside).reshape(-1).cpu().numpy()
