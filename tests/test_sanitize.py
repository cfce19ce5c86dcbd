"""sanitize(): which splats are dropped, how they are counted, identity for zero quaternions, policies."""

from __future__ import annotations

import numpy as np
import pytest
from plyfiles import random_splats

from sogs_compressor.errors import EmptySceneError, InvalidValuesError
from sogs_compressor.read.sanitize import REASONS, sanitize


def _snapshot(splats):
    return {name: getattr(splats, name).copy() for name in
            ("positions", "log_scales", "rotations", "opacity_logits", "f_dc", "f_rest")}


def test_clean_input_is_untouched():
    splats = random_splats(50, sh_degree=1, seed=1)
    out, report = sanitize(splats)
    assert out.count == 50
    assert report.dropped == dict.fromkeys(REASONS, 0) and report.quaternions_replaced == 0
    np.testing.assert_array_equal(out.positions, splats.positions)


def test_each_reason_counted_once_in_order():
    splats = random_splats(20, sh_degree=2, seed=2)
    splats.positions[0, 1] = np.inf
    splats.rotations[0, 0] = np.nan  # second problem of splat 0: still counted as position only
    splats.rotations[1, 3] = -np.inf
    splats.f_dc[2, 2] = np.nan
    splats.f_rest[3, 23] = np.inf
    splats.log_scales[4, 0] = np.nan
    splats.log_scales[4, 1] = np.nan  # NaN twice in one splat: one drop
    splats.opacity_logits[5] = np.nan
    splats.opacity_logits[6] = np.nan
    splats.f_dc[6, 0] = np.inf  # colour comes before opacity
    # legitimate infinities are kept
    splats.log_scales[7, 2] = -np.inf
    splats.log_scales[8, 0] = np.inf
    splats.opacity_logits[9] = np.inf
    splats.opacity_logits[10] = -np.inf
    dirty = _snapshot(splats)

    out, report = sanitize(splats)
    assert report.dropped == {
        "non_finite_position": 1,
        "non_finite_rotation": 1,
        "non_finite_color": 3,
        "nan_scale": 1,
        "nan_opacity": 1,
    }
    assert report.total_dropped == 7 and out.count == 13
    kept = np.r_[7:20]
    np.testing.assert_array_equal(out.positions, dirty["positions"][kept])
    np.testing.assert_array_equal(out.f_rest, dirty["f_rest"][kept])
    assert out.log_scales[0, 2] == -np.inf and out.opacity_logits[2] == np.inf
    # the input arrays were not modified in place
    for name, values in dirty.items():
        np.testing.assert_array_equal(getattr(splats, name), values)


def test_zero_quaternions_become_identity_without_touching_input():
    splats = random_splats(10, seed=3)
    splats.rotations[[2, 5]] = 0.0
    splats.rotations[7] = [0.0, 0.0, 0.0, 1e-30]  # tiny but not zero: kept as is
    out, report = sanitize(splats)
    assert report.quaternions_replaced == 2 and report.total_dropped == 0
    np.testing.assert_array_equal(out.rotations[[2, 5]], [[1, 0, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(out.rotations[7], splats.rotations[7])
    assert not splats.rotations[2].any()


def test_zero_quaternion_counted_after_drops():
    splats = random_splats(4, seed=4)
    splats.rotations[1] = 0.0
    splats.positions[1, 0] = np.nan  # dropped first, so not "replaced"
    splats.rotations[3] = 0.0
    out, report = sanitize(splats)
    assert out.count == 3 and report.quaternions_replaced == 1


def test_error_policy_names_count_and_reason():
    splats = random_splats(30, seed=5)
    splats.positions[[1, 2], 0] = np.nan
    splats.opacity_logits[4] = np.nan
    with pytest.raises(InvalidValuesError, match=r"3 of 30 splats .*\(2 non-finite position, 1 NaN opacity\)") as info:
        sanitize(splats, policy="error")
    assert info.value.exit_code == 16


def test_error_policy_passes_clean_input_and_still_fixes_quaternions():
    splats = random_splats(5, seed=6)
    splats.rotations[0] = 0.0
    out, report = sanitize(splats, policy="error")
    assert out.count == 5 and report.quaternions_replaced == 1


def test_everything_dropped_is_an_empty_scene():
    splats = random_splats(6, seed=7)
    splats.f_dc[:, 1] = np.nan
    with pytest.raises(EmptySceneError, match="all 6 splats"):
        sanitize(splats)


def test_unknown_policy():
    with pytest.raises(ValueError, match="policy"):
        sanitize(random_splats(2), policy="ignore")


def test_row_sum_screening_has_no_false_positives():
    """Values whose row sums overflow or cancel are not mistaken for invalid or zero ones."""
    splats = random_splats(10, sh_degree=2, seed=3)
    big = np.finfo(np.float32).max
    splats.f_rest[0, :] = big  # finite, but the float32 row sum overflows to inf
    splats.positions[1] = (big, big, -big)
    splats.log_scales[2] = (np.inf, -np.inf, 0.0)  # sums to NaN, yet holds no NaN: kept
    splats.rotations[3] = (0.5, -0.5, 0.0, 0.0)  # sums to zero, yet is not a zero quaternion
    splats.rotations[4] = (0.0, -0.0, 0.0, 0.0)  # a zero quaternion (negative zero included)
    out, report = sanitize(splats)
    assert out.count == 10 and report.total_dropped == 0
    assert report.quaternions_replaced == 1
    np.testing.assert_array_equal(out.rotations[3], (0.5, -0.5, 0.0, 0.0))
    np.testing.assert_array_equal(out.rotations[4], (1.0, 0.0, 0.0, 0.0))
    splats.f_rest[5, 7] = np.nan
    splats.log_scales[6] = (np.inf, np.nan, -np.inf)
    _, report = sanitize(splats)
    assert report.dropped["non_finite_color"] == 1 and report.dropped["nan_scale"] == 1
