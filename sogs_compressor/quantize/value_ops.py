"""The heavy steps of building a 1D codebook, behind one interface so they can run on a device.

A codebook build (``codebook_rd.quantize_1d_rd``, ``bound.bound_codebook``) is a few passes over millions of
values (a stable sort, nearest-entry labels, the error bound's check) and about ten dynamic programmes over ~1,024
bins (the penalty search of ``codebook_rd.ecsq_partition``) around a small host computation (prefix sums). Those
steps are where the time goes, and on the host they compete for the interpreter with the threads that drive the
GPU. ``HostOps`` is the numpy reference;
``sog.codebook.DeviceOps`` gives the same results on a torch device (a stable sort is unique, the
search and the bound's check are exact comparisons, the dynamic programme the same float64 operations in the same
order: ``quantize/dp_triton.py``), so the codebooks, and the bytes, are the same either way.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from sogs_compressor.quantize.codebook import nearest_codebook_index


class ValueOps(Protocol):
    """The passes over all values of a codebook build; every implementation returns the same arrays."""

    def stable_argsort(self, flat: np.ndarray) -> np.ndarray:
        """int64 indices that sort finite float32 ``flat`` ascending, equal values in input order."""
        ...

    def nearest(self, values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
        """``codebook.nearest_codebook_index``: uint8 index of the nearest entry (shape of ``values``)."""
        ...

    def group_counts(self, costs: np.ndarray, penalties: np.ndarray) -> np.ndarray:
        """``dp_group_counts``: the optimal partition's number of groups per penalty (int64)."""
        ...

    def violations(self, values: np.ndarray, codebook: np.ndarray, labels: np.ndarray, below: float,
                   above: float) -> np.ndarray:
        """Flat indices of the finite values whose entry lies outside ``[v - below, v + above]``."""
        ...


def dp_group_counts(costs: np.ndarray, penalties: np.ndarray) -> np.ndarray:
    """For each penalty, the number of groups of the optimal partition of the bins (``costs[i, j]``: the cost of
    the group of bins i..j-1, inf where i >= j) with ``penalty`` added per group (``codebook_rd.ecsq_partition``)."""
    bins = costs.shape[0] - 1
    best = np.zeros((penalties.size, bins + 1))
    groups = np.zeros((penalties.size, bins + 1), np.int64)
    rows = np.arange(penalties.size)
    for j in range(1, bins + 1):
        total = best[:, :j] + costs[:j, j]
        i = np.argmin(total, axis=1)
        best[:, j] = total[rows, i] + penalties
        groups[:, j] = groups[rows, i] + 1
    return groups[:, bins]


class HostOps:
    """numpy on the host: the reference."""

    def stable_argsort(self, flat: np.ndarray) -> np.ndarray:
        return np.argsort(flat, kind="stable")

    def nearest(self, values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
        return nearest_codebook_index(values, codebook)

    def group_counts(self, costs: np.ndarray, penalties: np.ndarray) -> np.ndarray:
        return dp_group_counts(costs, penalties)

    def violations(self, values: np.ndarray, codebook: np.ndarray, labels: np.ndarray, below: float,
                   above: float) -> np.ndarray:
        flat = np.asarray(values).reshape(-1)
        error = np.asarray(codebook, np.float64)[np.asarray(labels).reshape(-1)] - flat.astype(np.float64)
        with np.errstate(invalid="ignore"):
            outside = (error > above) | (error < -below)
        return np.flatnonzero(outside & np.isfinite(flat))


HOST = HostOps()
