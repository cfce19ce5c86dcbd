"""A per-value error bound for 256-entry codebooks: every value decodes within ``[v - below, v + above]``.

The codebooks minimize (weighted) squared error plus rate, so a rare value the weights ignore can share an
entry far from it (faint floaters decoded 16x too large: issue 15). After a codebook and its labels are built,
``bound_codebook``

1. finds the values whose entry is outside their window (float64 ``entry - value``, exact for float32 inputs);
2. labels each to the nearest existing entry inside its window, if there is one;
3. covers the rest with new entries: a greedy interval cover of their sorted values (the fewest entries), each
   entry the mean of the values it covers, kept inside all their windows;
4. keeps every other label as it was (the rate-aware groups stay), remapped to the merged, sorted codebook.

When the merged codebook would exceed ``size`` entries, it reports how many are missing, and the caller rebuilds
the codebook with that many entries reserved (``sog.codebook.codebook_for``). The check of
every value runs where ``ops`` says (``value_ops``: the same indices on the host and a device); the repair of the
few it finds is host numpy, so the CPU and GPU encoders give the same bytes.
"""

from __future__ import annotations

import numpy as np

from sogs_compressor.quantize.value_ops import HOST, ValueOps

PLACEMENT_MARGIN = 1e-5
"""Relative margin kept from a window's edge when placing a new entry, so its float32 rounding stays inside."""


def violations(values: np.ndarray, codebook: np.ndarray, labels: np.ndarray, below: float, above: float) -> np.ndarray:
    """Flat indices of the finite values whose entry lies outside ``[v - below, v + above]``."""
    return HOST.violations(values, codebook, labels, below, above)


def bound_codebook(
    values: np.ndarray, codebook: np.ndarray, labels: np.ndarray, below: float, above: float, size: int = 256,
    ops: ValueOps = HOST,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(codebook of ``size`` entries, labels, entries missing): every finite value within its window.

    ``missing`` > 0 means the bound needs that many more entries than ``size`` allows; the codebook and labels
    are then the ones given, padded, unchanged. ``ops``: where the check of every value runs (``value_ops``).
    """
    flat = np.asarray(values).reshape(-1)
    labels = np.asarray(labels, np.uint8)
    codebook = np.asarray(codebook, np.float32)
    bad = ops.violations(flat, codebook, labels, below, above)
    if bad.size == 0:
        return _pad(codebook, size), labels, 0
    entries = np.unique(codebook).astype(np.float64)
    v = flat[bad].astype(np.float64)
    lo = np.searchsorted(entries, v - below, side="left")
    hi = np.searchsorted(entries, v + above, side="right")
    uncovered = np.unique(v[lo >= hi])
    added = cover(uncovered, below, above)
    merged = np.unique(np.concatenate([entries.astype(np.float32), added]))
    missing = merged.size - size
    if missing > 0:
        return _pad(codebook, size), labels, missing
    remap = np.searchsorted(merged, codebook).astype(np.uint8)  # old index -> index of the same value
    out = remap[labels.reshape(-1)]
    out[bad] = nearest_within(merged, v, below, above)
    return _pad(merged, size), out.reshape(labels.shape), 0


def cover(sorted_values: np.ndarray, below: float, above: float) -> np.ndarray:
    """Fewest float32 entries such that each value has one in ``[v - below, v + above]`` (greedy, sorted input).

    An entry ``c`` serves the values in ``[c - above, c + below]``: a run of values no wider than
    ``above + below`` shares one, placed at the run's mean, clipped into every member's window.
    """
    if sorted_values.size == 0:
        return np.zeros(0, np.float32)
    margin = PLACEMENT_MARGIN * (1.0 + np.abs(sorted_values))
    width = above + below
    out = []
    start = 0
    n = sorted_values.size
    while start < n:
        first = sorted_values[start]
        stop = int(np.searchsorted(sorted_values, first + width - 2.0 * margin[start], side="right"))
        stop = max(stop, start + 1)
        run = sorted_values[start:stop]
        lowest = run[-1] - below + margin[stop - 1]
        highest = first + above - margin[start]
        out.append(min(max(float(run.mean()), lowest), highest))
        start = stop
    return np.asarray(out, np.float32)


def nearest_within(entries: np.ndarray, v: np.ndarray, below: float, above: float) -> np.ndarray:
    """Index of the entry of ascending ``entries`` nearest each value among those in its window (the nearest
    entry overall where none is: that value stays beyond the bound, and the reports count it)."""
    e = np.asarray(entries, np.float64)
    lo = np.searchsorted(e, v - below, side="left")
    hi = np.searchsorted(e, v + above, side="right") - 1
    position = np.searchsorted(e, v)
    empty = lo > hi
    lo = np.where(empty, 0, lo)
    hi = np.where(empty, e.size - 1, hi)
    below_index = np.clip(position - 1, lo, hi)
    above_index = np.clip(position, lo, hi)
    pick_above = np.abs(e[above_index] - v) < np.abs(e[below_index] - v)
    return np.where(pick_above, above_index, below_index).astype(np.uint8)


def _pad(codebook: np.ndarray, size: int) -> np.ndarray:
    """The codebook padded with its last entry to ``size`` entries (float32, ascending)."""
    codebook = np.asarray(codebook, np.float32)
    if codebook.size >= size:
        return codebook[:size]
    return np.concatenate([codebook, np.full(size - codebook.size, codebook[-1], np.float32)])
