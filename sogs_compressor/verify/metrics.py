"""Per-attribute errors between a splat set and its decoded SOG (same splats, same order)."""

from __future__ import annotations

import numpy as np

from sogs_compressor.encode.attributes import normalize_quaternions, sigmoid
from sogs_compressor.splats import COEFFS_PER_DEGREE, SplatSet

BLOCK_ROWS = 1 << 18
"""Rows compared at a time: the float64 temporaries stay at a few tens of MB whatever the scene size."""


def attribute_errors(reference: SplatSet, decoded: SplatSet) -> dict:
    """Errors of ``decoded`` against ``reference``; both must hold the same splats in the same order.

    position_rel_*: distance over the reference bounding-box diagonal; rotation_deg_*: angle between the two
    orientations (q and -q are the same rotation); log_scale_rmse counts finite reference values only (2DGS flat
    axes are -inf); f_rest over the SH degree both share. Computed a block of rows at a time.
    """
    if reference.count != decoded.count:
        raise ValueError(f"cannot compare {reference.count} splats with {decoded.count}")
    n = reference.count
    extent = (reference.positions.max(axis=0).astype(np.float64) - reference.positions.min(axis=0)) if n else 0.0
    diagonal = float(np.linalg.norm(extent)) or 1.0
    rest = COEFFS_PER_DEGREE[min(reference.sh_degree, decoded.sh_degree)]  # coefficients per channel
    pos_err = np.empty(n)
    rot_deg = np.empty(n)
    sums = dict.fromkeys(("f_dc", "opacity", "scale", "scale_count", "f_rest"), 0.0)
    for start in range(0, n, BLOCK_ROWS):
        rows = slice(start, start + BLOCK_ROWS)
        ref_pos = reference.positions[rows].astype(np.float64)
        pos_err[rows] = np.linalg.norm(decoded.positions[rows] - ref_pos, axis=1) / diagonal

        q_ref = normalize_quaternions(reference.rotations[rows])
        q_dec = normalize_quaternions(decoded.rotations[rows])
        cos_half = np.clip(np.abs(np.sum(q_ref * q_dec, axis=1)), 0.0, 1.0)
        rot_deg[rows] = np.degrees(2.0 * np.arccos(cos_half))

        ref_scales, dec_scales = reference.log_scales[rows], decoded.log_scales[rows]
        finite = np.isfinite(ref_scales) & np.isfinite(dec_scales)
        sums["scale"] += _squared(dec_scales.astype(np.float64)[finite] - ref_scales[finite])
        sums["scale_count"] += int(finite.sum())
        sums["f_dc"] += _squared(decoded.f_dc[rows].astype(np.float64) - reference.f_dc[rows])
        sums["opacity"] += float(np.sum(np.abs(
            sigmoid(decoded.opacity_logits[rows]) - sigmoid(reference.opacity_logits[rows]))))
        sums["f_rest"] += _squared(_rest_block(decoded, rows, rest) - _rest_block(reference, rows, rest))
    return {
        "position_rel_median": _q(pos_err, 50),
        "position_rel_p99": _q(pos_err, 99),
        "position_rel_max": float(pos_err.max()),
        "f_dc_rmse": _root_mean(sums["f_dc"], 3 * n),
        "opacity_mae": sums["opacity"] / n if n else 0.0,
        "log_scale_rmse": _root_mean(sums["scale"], sums["scale_count"]),
        "rotation_deg_median": _q(rot_deg, 50),
        "rotation_deg_p99": _q(rot_deg, 99),
        "f_rest_rmse": _root_mean(sums["f_rest"], 3 * rest * n),
        "bbox_diagonal": diagonal,
    }


def _rest_block(splats: SplatSet, rows: slice, coeffs: int) -> np.ndarray:
    """The first ``coeffs`` SH coefficients per channel of a block of rows, float64, channel-major."""
    block = splats.f_rest[rows].astype(np.float64)
    per_channel = splats.coeffs_per_channel
    return block.reshape(block.shape[0], 3, per_channel)[:, :, :coeffs].reshape(block.shape[0], -1)


def _squared(diff: np.ndarray) -> float:
    return float(np.sum(diff * diff))


def _root_mean(total: float, count: int) -> float:
    return float(np.sqrt(total / count)) if count else 0.0


def _q(values: np.ndarray, percent: float) -> float:
    return float(np.percentile(values, percent))
