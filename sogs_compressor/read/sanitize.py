"""Remove (or refuse) splats whose values would poison the encoder, and repair all-zero quaternions.

Which values are fatal follows splat-transform's ``filterNaNRows`` (formats.md 5.6): a non-finite position,
rotation or colour/SH, or a NaN scale or opacity. Infinite scales (-inf: flat 2DGS axes) and infinite opacity
(sigmoid gives 0 or 1) are legitimate and kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from sogs_compressor.errors import EmptySceneError, InvalidValuesError
from sogs_compressor.splats import SplatSet

REASONS = ("non_finite_position", "non_finite_rotation", "non_finite_color", "nan_scale", "nan_opacity")
"""Drop reasons, in the order a splat with several problems is attributed."""

POLICIES = ("drop", "error")

LABELS = {
    "non_finite_position": "non-finite position",
    "non_finite_rotation": "non-finite rotation",
    "non_finite_color": "non-finite colour/SH",
    "nan_scale": "NaN scale",
    "nan_opacity": "NaN opacity",
}


@dataclass
class SanitizeReport:
    """How many splats were dropped per reason, and how many zero quaternions became identity."""

    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    quaternions_replaced: int = 0

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())


def _row_sums(values: np.ndarray) -> np.ndarray:
    """Float32 row sums by one matrix-vector product (~10x faster than element-wise tests over the rows)."""
    rows = values.reshape(values.shape[0], -1)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow and inf - inf are what the screen looks for
        return rows @ np.ones(rows.shape[1], rows.dtype)


def _all_finite(values: np.ndarray) -> np.ndarray:
    """Per row, whether every value is finite.

    A row sum is non-finite whenever a value is (inf and NaN propagate through a sum), so the sums screen the
    rows; rows whose finite values merely overflow the sum are then checked element by element.
    """
    rows = values.reshape(values.shape[0], -1)
    if rows.dtype != np.float32 or rows.shape[1] < 2:
        return np.isfinite(rows).all(axis=1)
    finite = np.isfinite(_row_sums(rows))
    suspect = np.flatnonzero(~finite)
    if suspect.size:
        finite[suspect] = np.isfinite(rows[suspect]).all(axis=1)
    return finite


def _any_nan(values: np.ndarray) -> np.ndarray:
    """Per row, whether a value is NaN (screened by the row sums like ``_all_finite``: +inf + -inf is NaN too)."""
    rows = values.reshape(values.shape[0], -1)
    if rows.dtype != np.float32 or rows.shape[1] < 2:
        return np.isnan(rows).any(axis=1)
    nan = np.isnan(_row_sums(rows))
    suspect = np.flatnonzero(nan)
    if suspect.size:
        nan[suspect] = np.isnan(rows[suspect]).any(axis=1)
    return nan


def invalid_masks(splats: SplatSet) -> dict[str, np.ndarray]:
    """Per reason, a boolean mask of the splats that have that problem (a splat may be in several)."""
    return {
        "non_finite_position": ~_all_finite(splats.positions),
        "non_finite_rotation": ~_all_finite(splats.rotations),
        "non_finite_color": ~(_all_finite(splats.f_dc) & _all_finite(splats.f_rest)),
        "nan_scale": _any_nan(splats.log_scales),
        "nan_opacity": np.isnan(splats.opacity_logits),
    }


def attribute_reasons(masks: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, int]]:
    """(any-problem mask, count per reason) with each bad splat counted once, under its first reason."""
    bad = np.zeros_like(next(iter(masks.values())))
    counts = {}
    for reason in REASONS:
        fresh = masks[reason] & ~bad
        counts[reason] = int(fresh.sum())
        bad |= fresh
    return bad, counts


def _replace_zero_quaternions(splats: SplatSet) -> tuple[SplatSet, int]:
    zero = _row_sums(splats.rotations) == 0  # a zero row sums to 0; rows that merely cancel are checked exactly
    suspect = np.flatnonzero(zero)
    if suspect.size:
        zero[suspect] = ~splats.rotations[suspect].any(axis=1)
    count = int(zero.sum())
    if not count:
        return splats, 0
    rotations = splats.rotations.copy()
    rotations[zero] = (1.0, 0.0, 0.0, 0.0)
    return replace(splats, rotations=rotations), count


def sanitize(splats: SplatSet, policy: str = "drop") -> tuple[SplatSet, SanitizeReport]:
    """Drop (policy ``drop``) or refuse (``error``: InvalidValuesError) invalid splats; never edits ``splats``.

    All-zero quaternions become identity (1, 0, 0, 0). EmptySceneError if nothing is left.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown invalid-values policy {policy!r}; expected one of {POLICIES}")
    bad, counts = attribute_reasons(invalid_masks(splats))
    report = SanitizeReport(dropped=counts)
    if bad.any():
        if policy == "error":
            found = ", ".join(f"{n} {LABELS[reason]}" for reason, n in counts.items() if n)
            raise InvalidValuesError(
                f"{int(bad.sum())} of {splats.count} splats have invalid values ({found}); "
                "use --invalid drop to remove them"
            )
        if bad.all():
            raise EmptySceneError(f"all {splats.count} splats have invalid values and were dropped")
        splats = splats.take(np.flatnonzero(~bad))
    splats, report.quaternions_replaced = _replace_zero_quaternions(splats)
    return splats, report
