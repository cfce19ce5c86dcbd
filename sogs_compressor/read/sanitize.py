"""Remove (or refuse) splats whose values would poison the encoder, and repair all-zero quaternions.

Which values are fatal follows splat-transform's ``filterNaNRows`` (formats.md 5.6): a non-finite position,
rotation or colour/SH, or a NaN scale or opacity. Infinite scales (-inf: flat 2DGS axes) and infinite opacity
(sigmoid gives 0 or 1) are legitimate and kept.
"""

from __future__ import annotations

from collections.abc import Callable
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


RowTest = Callable[[np.ndarray], np.ndarray]


def _rows_where(values: np.ndarray, candidate: RowTest, exact: RowTest) -> np.ndarray:
    """Per row, ``exact(rows)``, for a property that makes ``candidate(row sum)`` true wherever it holds.

    The float32 row sums rule out most rows at once; only candidate rows are tested element by element (NaN and
    inf propagate through a sum, a zero row sums to 0; finite values that overflow or cancel are the rare
    candidates the exact test then clears).
    """
    rows = values.reshape(values.shape[0], -1)
    if rows.dtype != np.float32 or rows.shape[1] < 2:
        return exact(rows)
    found = candidate(_row_sums(rows))
    suspect = np.flatnonzero(found)
    if suspect.size:
        found[suspect] = exact(rows[suspect])
    return found


def _any_non_finite(values: np.ndarray) -> np.ndarray:
    return _rows_where(values, lambda sums: ~np.isfinite(sums), lambda rows: ~np.isfinite(rows).all(axis=1))


def _any_nan(values: np.ndarray) -> np.ndarray:
    return _rows_where(values, np.isnan, lambda rows: np.isnan(rows).any(axis=1))


def _all_zero(values: np.ndarray) -> np.ndarray:
    return _rows_where(values, lambda sums: sums == 0, lambda rows: ~rows.any(axis=1))


def invalid_masks(splats: SplatSet) -> dict[str, np.ndarray]:
    """Per reason, a boolean mask of the splats that have that problem (a splat may be in several)."""
    return {
        "non_finite_position": _any_non_finite(splats.positions),
        "non_finite_rotation": _any_non_finite(splats.rotations),
        "non_finite_color": _any_non_finite(splats.f_dc) | _any_non_finite(splats.f_rest),
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
    zero = _all_zero(splats.rotations)
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
