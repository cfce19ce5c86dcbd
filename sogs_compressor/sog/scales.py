"""Scales (``scales``): each splat's three log-scales as labels into one 256-entry codebook (formats.md 2.6).

The encoder holds every log-scale within ``tolerances``' window when the error bound is on; labels go in RGB,
alpha 255.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sogs_compressor import tolerances
from sogs_compressor.quantize.value_ops import HOST, ValueOps
from sogs_compressor.sog.codebook import codebook_for, decode_codebook

SCALE_WINDOW = (tolerances.SCALE_SHRINK, tolerances.SCALE_GROWTH)
"""(below, above) of every log-scale under the error bound."""


def encode_scales(log_scales: np.ndarray, rate_weight: float, seed: int, *, ops: ValueOps = HOST,
                  weights: Callable[[np.ndarray], np.ndarray] | None = None,
                  error_bound: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(codebook (256,), labels (N, 3) uint8) of the log-scales (``codebook.codebook_for``)."""
    return codebook_for(log_scales, rate_weight, seed, ops=ops, weights=weights,
                        window=SCALE_WINDOW if error_bound else None)


def decode_scales(rgba: np.ndarray, codebook) -> np.ndarray:
    """(N, 4) RGBA rows of ``scales`` -> (N, 3) float32 log-scales."""
    return decode_codebook(rgba[:, :3], codebook)
