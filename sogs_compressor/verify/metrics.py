"""Per-attribute errors between a splat set and its decoded SOG (same splats, same order)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sogs_compressor import tolerances
from sogs_compressor.sog.colour import sigmoid
from sogs_compressor.sog.means import log_transform
from sogs_compressor.sog.quats import normalize_quaternions
from sogs_compressor.splats import COEFFS_PER_DEGREE, SplatSet

BLOCK_ROWS = 1 << 18
"""Rows compared at a time: the float64 temporaries stay at a few tens of MB whatever the scene size."""


def attribute_errors(reference: SplatSet, decoded: SplatSet) -> dict:
    """Errors of ``decoded`` against ``reference``; both must hold the same splats in the same order.

    position_rel_*: distance over the reference bounding-box diagonal; rotation_deg_*: angle between the two
    orientations (q and -q are the same rotation); log_scale_rmse counts finite reference values only (2DGS flat
    axes are -inf); f_rest over the SH degree both share. Computed a block of rows at a time.

    Worst cases (``worst_cases``): per splat, the largest error over its axes / channels, then p99 and max over the
    splats, and ``*_beyond`` (``beyond_tolerance``): how many splats exceed each of ``tolerances``' bounds.
    """
    if reference.count != decoded.count:
        raise ValueError(f"cannot compare {reference.count} splats with {decoded.count}")
    n = reference.count
    extent = (reference.positions.max(axis=0).astype(np.float64) - reference.positions.min(axis=0)) if n else 0.0
    diagonal = float(np.linalg.norm(extent)) or 1.0
    rest = COEFFS_PER_DEGREE[min(reference.sh_degree, decoded.sh_degree)]  # coefficients per channel
    pos_err = np.empty(n)
    per_splat = {key: np.empty(n) for key in PER_SPLAT}
    rot_deg = per_splat["rotation_deg"]
    cell = position_cell(reference)
    sums = dict.fromkeys(("f_dc", "opacity", "scale", "scale_count", "f_rest"), 0.0)
    for start in range(0, n, BLOCK_ROWS):
        rows = slice(start, start + BLOCK_ROWS)
        ref_pos = reference.positions[rows].astype(np.float64)
        pos_err[rows] = np.linalg.norm(decoded.positions[rows] - ref_pos, axis=1) / diagonal
        moved = np.abs(log_transform(decoded.positions[rows].astype(np.float64)) - log_transform(ref_pos))
        per_splat["position_cells"][rows] = np.max(np.where(cell > 0, moved / np.where(cell > 0, cell, 1.0), 0.0),
                                                   axis=1)

        q_ref = normalize_quaternions(reference.rotations[rows])
        q_dec = normalize_quaternions(decoded.rotations[rows])
        cos_half = np.clip(np.abs(np.sum(q_ref * q_dec, axis=1)), 0.0, 1.0)
        rot_deg[rows] = np.degrees(2.0 * np.arccos(cos_half))

        ref_scales, dec_scales = reference.log_scales[rows], decoded.log_scales[rows]
        finite = np.isfinite(ref_scales) & np.isfinite(dec_scales)
        scale_diff = np.where(finite, dec_scales.astype(np.float64) - ref_scales, 0.0)
        sums["scale"] += _squared(scale_diff)
        sums["scale_count"] += int(finite.sum())
        per_splat["log_scale_growth"][rows] = scale_diff.max(axis=1)
        per_splat["log_scale_shrink"][rows] = -scale_diff.min(axis=1)
        dc_diff = decoded.f_dc[rows].astype(np.float64) - reference.f_dc[rows]
        sums["f_dc"] += _squared(dc_diff)
        per_splat["f_dc_abs"][rows] = np.abs(dc_diff).max(axis=1)
        alpha_diff = sigmoid(decoded.opacity_logits[rows]) - sigmoid(reference.opacity_logits[rows])
        sums["opacity"] += float(np.sum(np.abs(alpha_diff)))
        per_splat["opacity_growth"][rows] = alpha_diff
        rest_diff = _rest_block(decoded, rows, rest) - _rest_block(reference, rows, rest)
        sums["f_rest"] += _squared(rest_diff)
        per_splat["f_rest_abs"][rows] = np.abs(rest_diff).max(axis=1) if rest else 0.0
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
        **worst_cases(lambda key, percents: [_q(per_splat[key], p) for p in percents], n),
        **beyond_tolerance(per_splat, lambda mask: int(mask.sum())),
    }


PER_SPLAT = ("log_scale_growth", "log_scale_shrink", "f_dc_abs", "opacity_growth", "rotation_deg", "position_cells",
             "f_rest_abs")
"""Per-splat worst errors (largest over the splat's axes / channels) that ``worst_cases`` summarizes."""


def worst_cases(percentiles: Callable[[str, tuple[float, ...]], list[float]], n: int) -> dict:
    """p99 and max of each per-splat error; ``percentiles(key, percents)`` gives those of ``PER_SPLAT[key]``
    (100 = max). Shared by the host and the device measure, so both report the same keys by the same rules."""
    def p99_max(key: str) -> tuple[float, float]:
        if not n:
            return 0.0, 0.0
        low, high = percentiles(key, (99, 100))
        return low, high

    growth_p99, growth_max = p99_max("log_scale_growth")
    _, shrink_max = p99_max("log_scale_shrink")
    f_dc_p99, f_dc_max = p99_max("f_dc_abs")
    _, opacity_max = p99_max("opacity_growth")
    _, rotation_max = p99_max("rotation_deg")
    cells_p99, cells_max = p99_max("position_cells")
    rest_p99, rest_max = p99_max("f_rest_abs")
    return {
        "log_scale_growth_p99": growth_p99,
        "log_scale_growth_max": growth_max,
        "log_scale_shrink_max": shrink_max,
        "f_dc_abs_p99": f_dc_p99,
        "f_dc_abs_max": f_dc_max,
        "opacity_growth_max": opacity_max,
        "rotation_deg_max": rotation_max,
        "position_cells_p99": cells_p99,
        "position_cells_max": cells_max,
        "f_rest_abs_p99": rest_p99,
        "f_rest_abs_max": rest_max,
    }


def beyond_tolerance(per_splat: dict, count: Callable) -> dict:
    """Splats beyond each of ``tolerances``' bounds (``*_beyond``): ``count(mask)`` over the per-splat errors
    (numpy arrays or torch tensors). A splat is beyond the scale bound when an axis grew by more than ``SCALE_GROWTH`` or shrank
    by more than ``SCALE_SHRINK``."""
    return {
        "log_scale_beyond": count((per_splat["log_scale_growth"] > tolerances.SCALE_GROWTH)
                                  | (per_splat["log_scale_shrink"] > tolerances.SCALE_SHRINK)),
        "f_dc_beyond": count(per_splat["f_dc_abs"] > tolerances.F_DC),
        "opacity_beyond": count(per_splat["opacity_growth"] > tolerances.OPACITY_GROWTH),
        "rotation_beyond": count(per_splat["rotation_deg"] > tolerances.ROTATION_DEG),
        "position_beyond": count(per_splat["position_cells"] > tolerances.POSITION_CELLS),
    }


BEYOND = {"log_scale_beyond": "scale", "f_dc_beyond": "colour", "opacity_beyond": "opacity",
          "rotation_beyond": "rotation", "position_beyond": "position"}
"""The error keys that count splats beyond a tolerance, and the bound each one names in warnings."""


def beyond_counts(errors: dict) -> dict:
    """The splats beyond each bound, by bound name, for the bounds some splats exceed (empty: all within)."""
    return {name: int(errors[key]) for key, name in BEYOND.items() if errors.get(key)}


def beyond_warnings(errors: dict) -> list[str]:
    """One warning per bound some splats exceed, e.g. "795 splats beyond the scale bound"."""
    return [f"{errors[key]} splat{'s' if errors[key] != 1 else ''} beyond the {name} bound"
            for key, name in BEYOND.items() if errors.get(key)]


def position_cell(reference: SplatSet) -> np.ndarray:
    """The size of one cell of the format's 16-bit position grid per axis, in its log space, for ``reference``
    (the encoder's per-axis range over 65,535)."""
    if not reference.count:
        return np.zeros(3)
    lt_min = log_transform(reference.positions.min(axis=0).astype(np.float64))
    lt_max = log_transform(reference.positions.max(axis=0).astype(np.float64))
    return (lt_max - lt_min) / 65535.0


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
