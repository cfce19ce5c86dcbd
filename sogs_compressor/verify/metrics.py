"""Per-attribute errors between a splat set and its decoded SOG (same splats, same order)."""

from __future__ import annotations

import numpy as np

from sogs_compressor.encode.attributes import normalize_quaternions, sigmoid
from sogs_compressor.splats import SplatSet


def attribute_errors(reference: SplatSet, decoded: SplatSet) -> dict:
    """Errors of ``decoded`` against ``reference``; both must hold the same splats in the same order.

    position_rel_*: distance over the reference bounding-box diagonal; rotation_deg_*: angle between the two
    orientations (q and -q are the same rotation); log_scale_rmse counts finite reference values only (2DGS flat
    axes are -inf); f_rest over the SH degree both share.
    """
    if reference.count != decoded.count:
        raise ValueError(f"cannot compare {reference.count} splats with {decoded.count}")
    pos_ref = reference.positions.astype(np.float64)
    extent = pos_ref.max(axis=0) - pos_ref.min(axis=0)
    diagonal = float(np.linalg.norm(extent)) or 1.0
    pos_err = np.linalg.norm(decoded.positions.astype(np.float64) - pos_ref, axis=1) / diagonal

    q_ref = normalize_quaternions(reference.rotations)
    q_dec = normalize_quaternions(decoded.rotations)
    cos_half = np.clip(np.abs(np.sum(q_ref * q_dec, axis=1)), 0.0, 1.0)
    rot_deg = np.degrees(2.0 * np.arccos(cos_half))

    finite = np.isfinite(reference.log_scales) & np.isfinite(decoded.log_scales)
    scale_diff = (decoded.log_scales.astype(np.float64) - reference.log_scales)[finite]

    degree = min(reference.sh_degree, decoded.sh_degree)
    rest_ref = reference.with_sh_degree(degree).f_rest
    rest_dec = decoded.with_sh_degree(degree).f_rest

    opacity_diff = sigmoid(decoded.opacity_logits) - sigmoid(reference.opacity_logits)
    return {
        "position_rel_median": _q(pos_err, 50),
        "position_rel_p99": _q(pos_err, 99),
        "position_rel_max": float(pos_err.max()),
        "f_dc_rmse": _rmse(decoded.f_dc.astype(np.float64) - reference.f_dc),
        "opacity_mae": float(np.mean(np.abs(opacity_diff))),
        "log_scale_rmse": _rmse(scale_diff),
        "rotation_deg_median": _q(rot_deg, 50),
        "rotation_deg_p99": _q(rot_deg, 99),
        "f_rest_rmse": _chunked_rmse(rest_dec, rest_ref) if rest_ref.size else 0.0,
        "bbox_diagonal": diagonal,
    }


def _q(values: np.ndarray, percent: float) -> float:
    return float(np.percentile(values, percent))


def _chunked_rmse(a: np.ndarray, b: np.ndarray, rows: int = 1 << 18) -> float:
    """RMSE of a - b over all elements, in float64, a block of rows at a time (f_rest is up to 45 x N)."""
    total = 0.0
    for start in range(0, a.shape[0], rows):
        diff = a[start : start + rows].astype(np.float64) - b[start : start + rows]
        total += float(np.sum(diff * diff))
    return float(np.sqrt(total / a.size)) if a.size else 0.0


def _rmse(diff: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(diff)))) if diff.size else 0.0
