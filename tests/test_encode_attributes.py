"""Each SOG attribute encoder against its decoder, and the texture layout."""

from __future__ import annotations

import numpy as np
import pytest

from sogs_compressor.sog import colour, means, quats, sh_palette
from sogs_compressor.sog.layout import image_to_rows, rows_to_image, texture_size


@pytest.mark.parametrize(
    "count, size",
    [(1, (4, 4)), (16, (4, 4)), (17, (8, 4)), (1000, (32, 32)), (1_000_000, (1000, 1000)),
     (3_000_000, (1736, 1732))],
)
def test_texture_size_follows_splat_transform(count, size):
    assert texture_size(count) == size


def test_texture_size_rejects_too_many():
    with pytest.raises(ValueError):
        texture_size(16384 * 16384)


def test_rows_round_trip_with_zero_padding():
    rows = np.arange(37 * 4, dtype=np.uint8).reshape(37, 4)
    image = rows_to_image(rows, 8, 8)
    assert image.shape == (8, 8, 4)
    assert np.array_equal(image_to_rows(image, 37), rows)
    assert not image.reshape(-1, 4)[37:].any()


def test_means_round_trip_within_16_bit_log_step():
    rng = np.random.default_rng(1)
    positions = (rng.normal(scale=5, size=(5000, 3)) ** 3).astype(np.float32)
    low, high, mins, maxs = means.encode_means(positions)
    decoded = means.decode_means(low, high, mins, maxs)
    lt = means.log_transform(positions.astype(np.float64))
    step = (np.array(maxs) - np.array(mins)) / 65535
    # half a step in the log domain, mapped back through the derivative exp(|n|)
    bound = 0.5 * step * np.exp(np.abs(lt) + step) + 1e-6 * np.abs(positions)
    assert np.all(np.abs(decoded - positions) <= bound)


def test_means_constant_axis_and_single_splat():
    positions = np.array([[1.5, -2.0, 0.0]], np.float32)
    low, high, mins, maxs = means.encode_means(positions)
    assert np.allclose(means.decode_means(low, high, mins, maxs), positions, atol=1e-6)


def test_quats_round_trip_small_angle_error():
    rng = np.random.default_rng(2)
    q = rng.normal(size=(20000, 4)) * rng.uniform(0.1, 3, size=(20000, 1))
    rgba = quats.encode_quats(q)
    assert set(np.unique(rgba[:, 3])) <= {252, 253, 254, 255}
    decoded = quats.decode_quats(rgba)
    assert np.allclose(np.linalg.norm(decoded, axis=1), 1, atol=1e-5)
    unit = q / np.linalg.norm(q, axis=1, keepdims=True)
    angle = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(unit * decoded, axis=1)), 0, 1)))
    assert np.median(angle) < 0.45 and angle.max() < 1.2


@pytest.mark.parametrize("largest", range(4))
def test_quats_each_mode_decodes_to_the_same_rotation(largest):
    q = np.full((1, 4), 0.1)
    q[0, largest] = -0.9  # negative largest: encoder flips the sign, same rotation
    decoded = quats.decode_quats(quats.encode_quats(q))
    unit = q / np.linalg.norm(q)
    assert abs(abs(float(np.sum(unit * decoded))) - 1) < 1e-4
    assert quats.encode_quats(q)[0, 3] == 252 + largest


def test_quats_zero_and_bad_alpha_decode_to_identity():
    assert np.allclose(quats.decode_quats(quats.encode_quats(np.zeros((1, 4)))), [[1, 0, 0, 0]], atol=1e-2)
    assert np.array_equal(quats.decode_quats(np.array([[10, 20, 30, 7]], np.uint8)), [[1, 0, 0, 0]])


def test_opacity_round_trip_and_extremes():
    logits = np.array([-np.inf, -30, -1, 0, 1, 30, np.inf, np.nan], np.float32)
    alpha = colour.encode_opacity(logits)
    assert list(alpha) == [0, 0, 69, 128, 186, 255, 255, 0]
    p = 1 / (1 + np.exp(-np.array([-1.0, 0.0, 1.0])))
    decoded = colour.decode_opacity_logit(alpha[2:5])
    assert np.all(np.abs(1 / (1 + np.exp(-decoded)) - p) <= 0.5 / 255 + 1e-6)


def test_centroid_image_round_trip_and_width():
    rng = np.random.default_rng(3)
    for coeffs in (3, 8, 15):
        indices = rng.integers(0, 256, size=(130, 3 * coeffs), dtype=np.uint8)
        image = sh_palette.centroid_image(indices, coeffs)
        assert image.shape == (3, 64 * coeffs, 4)
        assert np.array_equal(sh_palette.centroids_from_image(image, 130, coeffs), indices)
        # centroid n, coefficient j at ((n % 64) * coeffs + j, n // 64); R holds f_rest_j
        assert image[2, 1 * coeffs + 2, 0] == indices[129, 2]
        assert image[2, 1 * coeffs + 2, 1] == indices[129, coeffs + 2]


def test_labels_round_trip():
    labels = np.array([0, 1, 255, 256, 65535])
    rgba = sh_palette.encode_labels(labels)
    assert np.array_equal(rgba[:, 2], [0] * 5) and np.array_equal(rgba[:, 3], [255] * 5)
    assert np.array_equal(sh_palette.decode_labels(rgba), labels)
