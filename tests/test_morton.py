"""Morton order against a plain recursive numpy transcription of splat-transform's algorithm (formats.md 2.3)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sogs_compressor.order.morton import morton_order, morton_order_host


def _part(v: int) -> int:
    v &= 0x3FF
    v = (v ^ (v << 16)) & 0xFF0000FF
    v = (v ^ (v << 8)) & 0x0300F00F
    v = (v ^ (v << 4)) & 0x030C30C3
    v = (v ^ (v << 2)) & 0x09249249
    return v


PART = np.array([_part(i) for i in range(1024)], dtype=np.int64)


def reference_morton(positions: np.ndarray) -> np.ndarray:
    """splat-transform's ``sortMortonStrided``: NaN-skipping bbox, truncation, stable sort, recursive runs."""
    pos = positions.astype(np.float64)
    indices = np.arange(pos.shape[0], dtype=np.int64)

    def generate(sub: np.ndarray) -> None:  # sorts the view ``sub`` in place
        p = pos[sub]
        lo = np.array([np.min(c[~np.isnan(c)], initial=np.inf) for c in p.T])
        hi = np.array([np.max(c[~np.isnan(c)], initial=-np.inf) for c in p.T])
        length = hi - lo
        if not np.all(np.isfinite(length)) or np.all(length == 0):
            return
        mul = np.array([0.0 if e == 0 else 1024 / e for e in length])
        with np.errstate(invalid="ignore"):
            t = np.minimum(1023.0, (p - lo) * mul)  # NaN stays NaN like Math.min
        q = np.where(np.isnan(t), 0, t).astype(np.int64)  # ``>>> 0``
        code = (PART[q[:, 2]] << 2) + (PART[q[:, 1]] << 1) + PART[q[:, 0]]
        perm = np.argsort(code, kind="stable")
        sub[:] = sub[perm]
        code = code[perm]
        start = 0
        while start < sub.size:
            end = start + 1
            while end < sub.size and code[end] == code[start]:
                end += 1
            if end - start > 256:
                generate(sub[start:end])
            start = end

    if indices.size:
        generate(indices)
    return indices


def _clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    """Dense clumps (forcing the recursive refinement) plus a wide sparse background."""
    centres = rng.uniform(-10, 10, size=(8, 3))
    clumps = centres[rng.integers(0, 8, n)] + rng.normal(scale=1e-4, size=(n, 3))
    background = rng.uniform(-50, 50, size=(n // 10, 3))
    return np.concatenate([clumps, background]).astype(np.float32)


DEVICES = ["host", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
"""``host``: ``morton_order_host`` (numpy, no torch); the others ``morton_order`` on that torch device."""


def ordered(positions: np.ndarray, device: str = "cpu") -> np.ndarray:
    return morton_order_host(positions) if device == "host" else morton_order(positions, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_on_clustered_points(seed: int, device: str) -> None:
    positions = _clustered(np.random.default_rng(seed), 6000)
    expected = reference_morton(positions)
    got = ordered(positions, device)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


def test_recursion_actually_happens() -> None:
    """The clustered data must contain equal-code runs > 256, else the test above would not cover refinement."""
    positions = _clustered(np.random.default_rng(0), 6000)
    one_level = np.argsort(_codes(positions), kind="stable")
    assert not np.array_equal(one_level, morton_order(positions))


def _codes(positions: np.ndarray) -> np.ndarray:
    p = positions.astype(np.float64)
    lo, hi = p.min(0), p.max(0)
    q = np.minimum(1023, (p - lo) * (1024 / (hi - lo))).astype(np.int64)
    return (PART[q[:, 2]] << 2) | (PART[q[:, 1]] << 1) | PART[q[:, 0]]


@pytest.mark.parametrize("device", DEVICES)
def test_duplicates_and_flat_axis(device: str) -> None:
    rng = np.random.default_rng(3)
    positions = rng.uniform(0, 1, size=(3000, 3)).astype(np.float32)
    positions[:, 1] = 0.5  # one axis with zero extent
    positions[1000:1600] = positions[1000]  # 600 identical points: a run that cannot be split
    np.testing.assert_array_equal(ordered(positions, device), reference_morton(positions))


@pytest.mark.parametrize("device", DEVICES)
def test_nan_is_ignored_in_bbox_and_coded_zero(device: str) -> None:
    rng = np.random.default_rng(4)
    positions = rng.normal(size=(2000, 3)).astype(np.float32)
    positions[rng.integers(0, 2000, 50), rng.integers(0, 3, 50)] = np.nan
    np.testing.assert_array_equal(ordered(positions, device), reference_morton(positions))


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
@pytest.mark.parametrize("device", DEVICES)
def test_infinite_extent_keeps_input_order(bad: float, device: str) -> None:
    positions = np.random.default_rng(5).normal(size=(500, 3)).astype(np.float32)
    positions[7, 2] = bad
    np.testing.assert_array_equal(ordered(positions, device), np.arange(500))
    positions[:, 2] = bad  # an extent of inf - inf: no warning either (the host order runs beside one-line errors)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(ordered(positions, device), np.arange(500))


@pytest.mark.parametrize("device", DEVICES)
def test_degenerate_sizes(device: str) -> None:
    assert ordered(np.zeros((0, 3), np.float32), device).shape == (0,)
    np.testing.assert_array_equal(ordered(np.zeros((1, 3), np.float32), device), [0])
    np.testing.assert_array_equal(ordered(np.ones((300, 3), np.float32), device), np.arange(300))
    with pytest.raises(ValueError):
        ordered(np.zeros((4, 2), np.float32), device)


@pytest.mark.parametrize("device", DEVICES)
def test_is_a_permutation_on_many_points(device: str) -> None:
    positions = _clustered(np.random.default_rng(6), 200_000)
    order = ordered(positions, device)
    assert np.array_equal(np.sort(order), np.arange(positions.shape[0]))


@pytest.mark.parametrize("seed", [7, 8])
def test_host_and_torch_orders_agree_on_a_real_scene_shape(seed: int) -> None:
    """Many points, wide and clustered, with duplicates, NaN and zero-extent runs: one permutation from both."""
    rng = np.random.default_rng(seed)
    positions = _clustered(rng, 120_000)
    positions[5000:5400] = positions[5000]
    positions[rng.integers(0, positions.shape[0], 30), rng.integers(0, 3, 30)] = np.nan
    np.testing.assert_array_equal(morton_order_host(positions), morton_order(positions, "cpu"))
