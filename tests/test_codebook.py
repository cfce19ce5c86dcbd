"""256-entry 1D codebooks: exactness, contract (ascending, finite, uint8), non-finite input, and squared error
no worse than splat-transform's algorithm (re-implemented in ``st_reference``) on heavy-tailed distributions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from st_reference import st_quantize_1d

from sogs_compressor.quantize.codebook import codebook_sse, nearest_codebook_index, quantize_1d


def _check_contract(values: np.ndarray, codebook: np.ndarray, labels: np.ndarray) -> None:
    assert codebook.dtype == np.float32 and codebook.shape == (256,)
    assert np.all(np.isfinite(codebook))
    assert np.all(np.diff(codebook) >= 0)
    assert labels.dtype == np.uint8 and labels.shape == values.shape
    json.dumps(codebook.tolist(), allow_nan=False)  # JSON-safe, as meta.json needs


def test_few_distinct_values_are_exact() -> None:
    rng = np.random.default_rng(0)
    distinct = rng.normal(size=256).astype(np.float32)
    values = rng.choice(distinct, size=(5000, 3))
    codebook, labels = quantize_1d(values)
    _check_contract(values, codebook, labels)
    np.testing.assert_array_equal(codebook[labels], values)


def test_fewer_than_256_distinct_values_pad_with_last() -> None:
    values = np.array([[3.0, -1.0, 2.5], [2.5, 3.0, 7.25]], np.float32)
    codebook, labels = quantize_1d(values)
    _check_contract(values, codebook, labels)
    np.testing.assert_array_equal(codebook[labels], values)
    np.testing.assert_array_equal(codebook[:4], [-1.0, 2.5, 3.0, 7.25])
    assert np.all(codebook[4:] == 7.25)


def test_constant_and_empty() -> None:
    values = np.full((100, 3), -4.5, np.float32)
    codebook, labels = quantize_1d(values)
    _check_contract(values, codebook, labels)
    assert np.all(codebook[labels] == -4.5)

    codebook, labels = quantize_1d(np.zeros((0, 3), np.float32))
    assert codebook.shape == (256,) and np.all(np.isfinite(codebook))
    assert labels.shape == (0, 3) and labels.dtype == np.uint8


def test_infinities_get_sentinels_and_nan_gets_255() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(-5, 2, size=(4000, 3)).astype(np.float32)
    values[0, 0] = -np.inf  # a flat 2DGS axis
    values[1, 1] = np.inf
    values[2, 2] = np.nan
    codebook, labels = quantize_1d(values)
    _check_contract(values, codebook, labels)
    finite = values[np.isfinite(values)]
    assert codebook[0] == pytest.approx(finite.min() - 20)
    assert codebook[255] == pytest.approx(finite.max() + 20)
    assert labels[0, 0] == 0 and labels[1, 1] == 255 and labels[2, 2] == 255
    # No finite value may use a sentinel slot.
    mask = np.isfinite(values)
    assert labels[mask].min() >= 1 and labels[mask].max() <= 254


def test_only_infinities() -> None:
    values = np.array([-np.inf, -np.inf, np.nan], np.float32)
    codebook, labels = quantize_1d(values)
    assert np.all(np.isfinite(codebook)) and np.all(np.diff(codebook) >= 0)
    assert codebook[labels[0]] == -20.0


def test_neg_inf_with_constant_finite_values() -> None:
    values = np.array([1.5] * 50 + [-np.inf] * 5, np.float32)
    codebook, labels = quantize_1d(values)
    assert codebook[0] == -18.5
    np.testing.assert_array_equal(codebook[labels[:50]], 1.5)
    assert np.all(labels[50:] == 0)


def test_nearest_index_matches_brute_force() -> None:
    rng = np.random.default_rng(2)
    codebook = np.sort(rng.normal(size=256)).astype(np.float32)
    values = rng.normal(scale=1.5, size=10_000).astype(np.float32)
    got = nearest_codebook_index(values, codebook)
    dist = np.abs(values[:, None].astype(np.float64) - codebook[None, :].astype(np.float64))
    best = dist.min(axis=1)
    np.testing.assert_array_equal(dist[np.arange(values.size), got], best)


def test_deterministic() -> None:
    values = np.random.default_rng(3).standard_t(3, size=(20_000, 3)).astype(np.float32)
    a = quantize_1d(values)
    b = quantize_1d(values.copy())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def _distributions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    n = 20_000
    log_scales = rng.normal(-5, 1.5, size=(n, 3)).clip(-12, 2)
    log_scales[:200] = rng.normal(-11, 0.3, size=(200, 3))
    return {
        "log_scales": log_scales,
        "f_dc_student_t": rng.standard_t(3, size=(n, 3)) * 0.6 + 0.3,
        "mixture": np.concatenate([rng.normal(-9, 0.4, n), rng.normal(-4, 1, n), rng.exponential(1, n) - 2]),
        "sh_laplace": rng.laplace(0, 0.05, size=(n, 3)),
        "uniform": rng.uniform(-3, 5, size=n),
        "lognormal_tail": rng.lognormal(0, 1.2, size=n),
        "mostly_ties": np.concatenate([np.zeros(n), rng.normal(size=300)]),
        "far_outliers": np.concatenate([rng.normal(size=n), [1e6, -3e5]]),
    }


@pytest.mark.parametrize("name", list(_distributions()))
def test_sse_no_worse_than_splat_transform(name: str) -> None:
    values = _distributions()[name].astype(np.float32)
    codebook, labels = quantize_1d(values)
    _check_contract(values, codebook, labels)
    st_codebook, st_labels = st_quantize_1d(values)
    ours = codebook_sse(values, codebook, labels)
    theirs = codebook_sse(values, st_codebook, st_labels)
    assert ours <= theirs * 1.0001, f"{name}: ours {ours:.6g} > splat-transform {theirs:.6g}"


def test_near_optimal_on_small_input() -> None:
    """Against the exact optimum (dynamic programming over every distinct value) on 600 distinct values."""
    values = np.random.default_rng(5).standard_t(4, size=600).astype(np.float32)
    codebook, labels = quantize_1d(values)
    assert codebook_sse(values, codebook, labels) <= _optimal_sse(np.sort(values.astype(np.float64)), 256) * 1.02


def _optimal_sse(v: np.ndarray, k: int) -> float:
    n = v.size
    s1 = np.concatenate(([0.0], np.cumsum(v)))
    s2 = np.concatenate(([0.0], np.cumsum(v * v)))
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    with np.errstate(invalid="ignore", divide="ignore"):
        cost = np.where(j > i, (s2[j] - s2[i]) - (s1[j] - s1[i]) ** 2 / np.maximum(j - i, 1), np.inf)
    best = cost[0].copy()  # best[j]: values[:j] in one group
    for _ in range(k - 1):
        best = np.minimum(best, (best[:, None] + cost).min(axis=0))
    return float(best[n])


def test_rejects_bad_size() -> None:
    with pytest.raises(ValueError):
        quantize_1d(np.zeros(4, np.float32), size=257)
