"""SH palette policy and ordering (quantize/palette.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sogs_compressor.quantize.kmeans import palette_size_rule
from sogs_compressor.quantize.palette import (
    WEIGHT_CAP_QUANTILE,
    WEIGHT_CEILING,
    WEIGHT_FLOOR,
    order_palette,
    palette_size,
    palette_weights,
    principal_projection,
)


@pytest.mark.parametrize("count", [0, 1, 100, 1023, 1024, 26_895, 70_000, 10_000_000])
def test_st_policy_is_splat_transforms_rule(count):
    assert palette_size(count, "st") == palette_size_rule(count)


@pytest.mark.parametrize("count", [1, 100, 256])
def test_auto_policy_small_scenes_keep_one_entry_per_splat(count):
    assert palette_size(count, "auto") == count


@pytest.mark.parametrize("count", [26_895, 100_000, 10_000_000])
def test_auto_policy_is_an_eighth_in_whole_rows_capped(count):
    entries = palette_size(count, "auto")
    assert entries % 64 == 0
    assert entries == 65536 or count / 8 <= entries < count / 8 + 64


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="palette policy"):
        palette_size(100, "huge")


@pytest.mark.parametrize("order", ["frequency", "pca"])
def test_order_palette_keeps_every_splats_vector_and_drops_unused(order):
    rng = np.random.default_rng(3)
    centroids = rng.normal(size=(50, 9)).astype(np.float32)
    labels = rng.choice(np.arange(0, 50, 2), size=400)  # odd entries unused
    new_centroids, new_labels = order_palette(centroids, labels, order)
    assert new_centroids.shape == (25, 9)
    np.testing.assert_array_equal(new_centroids[new_labels], centroids[labels])


def test_frequency_order_puts_most_used_first():
    centroids = np.arange(4, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    labels = np.array([3, 3, 3, 1, 1, 0])
    new_centroids, new_labels = order_palette(centroids, labels, "frequency")
    np.testing.assert_array_equal(new_centroids[:, 0], [3, 1, 0])
    np.testing.assert_array_equal(new_labels, [0, 0, 0, 1, 1, 2])


def test_pca_order_sorts_points_on_a_line():
    t = np.array([5.0, -2.0, 0.5, 3.0, -1.0])
    centroids = np.outer(t, [1.0, 2.0, -0.5])
    new_centroids, _ = order_palette(centroids, np.arange(5), "pca")
    projected = new_centroids @ np.array([1.0, 2.0, -0.5])
    assert np.all(np.diff(projected) > 0) or np.all(np.diff(projected) < 0)


def test_principal_projection_degenerate_inputs():
    assert principal_projection(np.zeros((1, 4))).shape == (1,)
    assert np.all(principal_projection(np.ones((5, 3))) == 0)


def test_palette_weights_grow_with_footprint_relative_to_the_median():
    log_scales = np.array([[-2.0, -2.0, -5.0], [-1.0, -1.0, -5.0], [-2.0, -2.0, -5.0]], np.float32)
    logits = np.array([0.0, 0.0, -30.0], np.float32)
    w = palette_weights(log_scales, logits)
    assert w.dtype == np.float32 and w.shape == (3,)
    # Footprints: 0.5 e^-4, 0.5 e^-2, ~0: median 0.5 e^-4; the largest is capped near the top quantile.
    assert w[0] == pytest.approx(1.0)
    assert 1.0 < w[1] <= np.exp(2.0)
    assert w[2] == pytest.approx(WEIGHT_FLOOR)


def test_palette_weights_cap_a_few_huge_splats():
    rng = np.random.default_rng(0)
    log_scales = rng.normal(-4, 0.3, size=(10_000, 3)).astype(np.float32)
    log_scales[0] = 20.0  # a floater the size of the scene
    w = palette_weights(log_scales, np.zeros(10_000, np.float32))
    assert w[0] == pytest.approx(np.quantile(w, WEIGHT_CAP_QUANTILE), rel=1e-3)
    assert w[0] < 100


def test_palette_weights_survive_bad_values_and_empty_input():
    log_scales = np.array([[np.inf, 0.0, 0.0], [np.nan, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    w = palette_weights(log_scales, np.array([0.0, 0.0, 1e30], np.float32))
    assert np.all(np.isfinite(w)) and np.all(w >= WEIGHT_FLOOR)
    assert palette_weights(np.zeros((0, 3), np.float32), np.zeros(0, np.float32)).shape == (0,)
    zero = palette_weights(np.zeros((4, 3), np.float32), np.full(4, -1e4, np.float32))  # median footprint 0
    assert np.array_equal(zero, np.ones(4, np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_palette_weights_on_cuda_match_the_host():
    rng = np.random.default_rng(3)
    log_scales = rng.normal(-4, 1.0, size=(100_001, 3)).astype(np.float32)
    logits = rng.normal(0, 2, size=100_001).astype(np.float32)
    host = palette_weights(log_scales, logits)
    cuda = palette_weights(log_scales, logits, torch.device("cuda"))
    np.testing.assert_allclose(cuda, host, rtol=1e-4)


def test_first_use_order_numbers_entries_as_the_splats_first_use_them():
    centroids = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    labels = np.array([3, 3, 1, 4, 1, 3, 0])  # entry 2 unused
    ordered, remapped = order_palette(centroids, labels, "first-use")
    np.testing.assert_array_equal(remapped, [0, 0, 1, 2, 1, 0, 3])
    np.testing.assert_array_equal(ordered, centroids[[3, 1, 4, 0]])
    np.testing.assert_array_equal(ordered[remapped], centroids[labels])


def test_auto_order_is_first_use_for_small_palettes_and_frequency_for_large():
    rng = np.random.default_rng(5)
    centroids = rng.normal(size=(100, 9)).astype(np.float32)
    few = rng.integers(0, 100, 250)  # 2.5 splats per entry
    many = rng.integers(0, 100, 2000)  # 20 per entry
    for labels, expected in ((few, "first-use"), (many, "frequency")):
        auto = order_palette(centroids, labels, "auto")
        explicit = order_palette(centroids, labels, expected)
        np.testing.assert_array_equal(auto[0], explicit[0])
        np.testing.assert_array_equal(auto[1], explicit[1])


def test_palette_weights_stay_finite_for_hostile_scales():
    """Found by the fuzz test: a compressed PLY read with the wrong byte order gives log-scales of -1e15 and
    1e29; footprints e^160 apart must still give finite float32 weights, with no warning."""
    log_scales = np.full((1000, 3), -1e15, np.float32)
    log_scales[:10] = 1e29
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = palette_weights(log_scales, np.zeros(1000, np.float32))
    assert w.dtype == np.float32 and np.all(np.isfinite(w)) and w.max() <= WEIGHT_CEILING
