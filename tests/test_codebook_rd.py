"""Rate-aware codebooks and position coarsening (quantize/codebook_rd.py)."""

from __future__ import annotations

import numpy as np
import pytest

from sogs_compressor.quantize.codebook import codebook_sse, quantize_1d
from sogs_compressor.quantize.codebook_rd import coarsen_grid, position_bits, quantize_1d_rd, rate_bits
from sogs_compressor.sog import means


def heavy_tailed(n=60_000, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-4.0, 0.6, n), rng.standard_t(3, n // 4) - 2.0]).astype(np.float32)


def test_weight_zero_is_the_mse_codebook():
    values = heavy_tailed(5000)
    a = quantize_1d(values)
    b = quantize_1d_rd(values, 0.0)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_higher_weight_trades_error_for_entropy():
    values = heavy_tailed()
    results = []
    for weight in (0.0, 2.0, 4.0, 8.0):
        codebook, labels = quantize_1d_rd(values, weight)
        assert codebook.shape == (256,) and codebook.dtype == np.float32
        assert np.all(np.diff(codebook) >= 0) and np.all(np.isfinite(codebook))
        results.append((codebook_sse(values, codebook, labels) / values.size, rate_bits(labels)))
    errors, bits = zip(*results, strict=True)
    assert all(b1 > b2 for b1, b2 in zip(bits, bits[1:], strict=False))
    assert all(e1 < e2 for e1, e2 in zip(errors, errors[1:], strict=False))
    # The scale of the weight: 4x the squared error buys most of a bit per value (high-rate theory: 1 bit).
    assert bits[0] - bits[2] > 0.7
    assert errors[2] / errors[0] < 6.0


def test_labels_decode_to_their_group_mean_shape_preserved():
    values = heavy_tailed(3000).reshape(-1, 3)
    codebook, labels = quantize_1d_rd(values, 4.0)
    assert labels.shape == values.shape and labels.dtype == np.uint8
    decoded = codebook[labels]
    for label in np.unique(labels):
        np.testing.assert_allclose(decoded[labels == label][0], values[labels == label].mean(), rtol=1e-4, atol=1e-5)


def test_exact_and_non_finite_inputs_fall_back_to_mse():
    few = np.repeat(np.linspace(-1, 1, 100, dtype=np.float32), 7)
    codebook, labels = quantize_1d_rd(few, 8.0)
    np.testing.assert_array_equal(codebook[labels], few)  # already-quantized data stays exact
    with_inf = np.concatenate([heavy_tailed(1000), [-np.inf]]).astype(np.float32)
    np.testing.assert_array_equal(quantize_1d_rd(with_inf, 4.0)[1], quantize_1d(with_inf)[1])


def test_bad_weight_is_refused():
    with pytest.raises(ValueError, match="rate_weight"):
        quantize_1d_rd(np.zeros(4, np.float32), -1.0)


def test_position_bits_by_opacity():
    logits = np.log(np.array([0.05, 0.2, 0.5, 0.99]) / (1 - np.array([0.05, 0.2, 0.5, 0.99])))
    np.testing.assert_array_equal(position_bits(logits, 14), [12, 13, 14, 14])
    np.testing.assert_array_equal(position_bits(logits, 16), [16, 16, 16, 16])
    with pytest.raises(ValueError):
        position_bits(logits, 17)


def test_coarsen_grid_rounds_to_the_step_and_stays_in_range():
    rng = np.random.default_rng(1)
    positions = rng.normal(size=(1000, 3)).astype(np.float32)
    low, high, mins, maxs = means.encode_means(positions)
    kept = rng.integers(11, 17, size=1000)
    low2, high2 = coarsen_grid(low, high, kept)
    q = high.astype(np.int64) * 256 + low
    q2 = high2.astype(np.int64) * 256 + low2
    step = (1 << (16 - kept))[:, None]
    assert np.all((q2 % step == 0) | (q2 == 65535))
    assert np.all(np.abs(q2 - q) <= step // 2 + 1)
    decoded = means.decode_means(low2, high2, mins, maxs)
    lt = means.log_transform(decoded.astype(np.float64))
    assert np.all(lt >= np.array(mins) - 1e-6) and np.all(lt <= np.array(maxs) + 1e-6)
    np.testing.assert_array_equal(coarsen_grid(low, high, np.full(1000, 16))[0], low)


def test_render_weights_favour_big_opaque_splats_and_leave_unweighted_results_alone():
    from sogs_compressor.quantize.codebook_rd import render_weights

    log_scales = np.array([[-5.0, -5.0, -6.0], [-1.0, -1.0, -9.0], [-5.0, -np.inf, -5.0]], np.float32)
    weights = render_weights(log_scales, np.array([0.0, 0.0, 0.0], np.float32))
    assert weights.shape == (3,)
    assert weights[1] > weights[0] > 0.0  # a bigger footprint weighs more
    faint = render_weights(log_scales, np.array([0.0, -8.0, 0.0], np.float32))
    assert faint[1] < weights[1]  # the same splat, nearly transparent, weighs less

    rng = np.random.default_rng(3)
    values = rng.laplace(size=(4000, 3)).astype(np.float32)
    plain = quantize_1d_rd(values, 2.0)
    ones = quantize_1d_rd(values, 2.0, weights=np.ones_like(values))
    assert np.array_equal(plain[0], ones[0]) and np.array_equal(plain[1], ones[1])


def test_weighted_codebook_moves_error_to_light_weights():
    rng = np.random.default_rng(4)
    values = rng.normal(size=20000).astype(np.float32)
    heavy = values > 1.5  # the upper tail counts 5x
    weights = np.where(heavy, 5.0, 1.0)
    plain_cb, plain_labels = quantize_1d_rd(values, 2.0)
    cb, labels = quantize_1d_rd(values, 2.0, weights=weights)

    def tail_error(codebook, lab):
        return float(np.mean((codebook[lab][heavy] - values[heavy]) ** 2))

    assert tail_error(cb, labels) < tail_error(plain_cb, plain_labels)


def test_sampled_codebook_keeps_already_quantized_values_exact():
    """Past the sample size a codebook is built from a sample; a column of <= 256 distinct values (a re-encoded
    SOG) must still come back exact even when a rare value is missing from the sample."""
    from sogs_compressor.sog.codebook import codebook_for

    rng = np.random.default_rng(3)
    levels = np.sort(rng.normal(size=200)).astype(np.float32)
    values = levels[rng.integers(0, 199, size=(30_000, 3))]  # level 199 is not drawn...
    values[12_345, 1] = levels[199]  # ...but for one value
    for rate_weight in (0.0, 8.0):
        codebook, labels = codebook_for(values, rate_weight, seed=0, sample_size=1000)
        np.testing.assert_array_equal(codebook[labels], values)


def test_sampled_rate_aware_codebook_labels_every_value_with_its_nearest_entry():
    from sogs_compressor.quantize.codebook import nearest_codebook_index
    from sogs_compressor.sog.codebook import codebook_for

    values = np.random.default_rng(4).normal(size=(20_000, 4)).astype(np.float32)
    weights = np.random.default_rng(5).random(20_000)
    codebook, labels = codebook_for(values, 16.0, seed=0, sample_size=5000, weights=lambda rows: weights[rows])
    np.testing.assert_array_equal(labels, nearest_codebook_index(values, codebook))
    whole, _ = codebook_for(values, 16.0, seed=0, weights=lambda rows: weights[rows])
    assert np.unique(codebook).size < 256 and np.unique(whole).size < 256  # the rate term merged entries


def test_render_weights_stay_finite_for_hostile_scales():
    """Found by the fuzz test: footprints e^160 apart overflowed the float32 ratio to the median (inf weights)."""
    import warnings

    from sogs_compressor.quantize.codebook_rd import render_weights

    log_scales = np.full((1000, 3), -1e15, np.float32)
    log_scales[:10] = 1e29
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weights = render_weights(log_scales, np.zeros(1000, np.float32))
    assert np.all(np.isfinite(weights)) and weights[0] == pytest.approx(np.log1p(np.finfo(np.float32).max))


def test_size_position_bits_keep_small_splats_exact_and_let_large_ones_round():
    """A splat's allowed rounding grows with its size over the grid's cell: one bit per doubling of the size."""
    from sogs_compressor.quantize.codebook_rd import size_position_bits

    cell = 2.0 / 65535.0  # mins -1, maxs 1 on every axis; positions at the origin: world cell = cell
    positions = np.zeros((6, 3))
    # sizes such that shift * size / cell = 2**j: allowance 1 + j
    j = np.array([-3.0, 0.0, 1.0, 2.0, 5.0, 40.0])
    middle = np.log(2.0 ** j * cell / 0.1)
    log_scales = np.stack([middle - 5.0, middle + 0.0, middle + 5.0], axis=1)  # the middle axis decides
    kept = size_position_bits(positions, log_scales, [-1.0] * 3, [1.0] * 3, shift=0.1)
    np.testing.assert_array_equal(kept, [16, 15, 14, 13, 10, 0])
    # the same splats twice as far from the origin in log space ((|x| + 1) = 2): one bit more each
    kept_far = size_position_bits(np.ones((6, 3)), log_scales, [-1.0] * 3, [1.0] * 3, shift=0.1)
    np.testing.assert_array_equal(kept_far, [16, 16, 15, 14, 11, 0])
