"""The O(n) and O(n log n) steps of building a 1D codebook, behind one interface so they can run on a device.

A codebook build (``codebook_rd.quantize_1d_rd``, ``bound.bound_codebook``) is a few passes over millions of
values (a stable sort, nearest-entry labels, the error bound's check) around a small host computation (prefix sums
and a dynamic programme over ~1,024 bins). The passes are where the time goes at millions of splats, and on the
host they compete for the interpreter with the threads that drive the GPU. ``HostOps`` is the numpy reference;
``encode.attributes_torch.DeviceOps`` gives the same results on a torch device (a stable sort is unique, the
search and the bound's check are exact comparisons), so the codebooks, and the bytes, are the same either way.
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

    def violations(self, values: np.ndarray, codebook: np.ndarray, labels: np.ndarray, below: float,
                   above: float) -> np.ndarray:
        """Flat indices of the finite values whose entry lies outside ``[v - below, v + above]``."""
        ...


class HostOps:
    """numpy on the host: the reference."""

    def stable_argsort(self, flat: np.ndarray) -> np.ndarray:
        return np.argsort(flat, kind="stable")

    def nearest(self, values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
        return nearest_codebook_index(values, codebook)

    def violations(self, values: np.ndarray, codebook: np.ndarray, labels: np.ndarray, below: float,
                   above: float) -> np.ndarray:
        flat = np.asarray(values).reshape(-1)
        error = np.asarray(codebook, np.float64)[np.asarray(labels).reshape(-1)] - flat.astype(np.float64)
        with np.errstate(invalid="ignore"):
            outside = (error > above) | (error < -below)
        return np.flatnonzero(outside & np.isfinite(flat))


HOST = HostOps()
