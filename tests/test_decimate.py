"""Decimation: the moment-matched merge against an independent numpy computation, the 3x3 eigensolver against
numpy's, the neighbours against brute force, the parallel matching against a sequential greedy one, exact counts,
determinism and degenerate splats."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sogs_compressor.lod.decimate import decimate
from sogs_compressor.lod.matching import NO_EDGE, match_pairs
from sogs_compressor.lod.moments import merge_pairs
from sogs_compressor.lod.neighbours import NONE, nearest_neighbours
from sogs_compressor.sample import generate_scene
from sogs_compressor.splats import COLUMNS, SplatSet

TINY_FLOOR = 1e-30


# ---- an independent numpy model of a splat as a Gaussian -------------------------------------------------------


def np_rotation(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a (w, x, y, z) quaternion, by the axis-angle (Rodrigues) formula."""
    q = q / np.linalg.norm(q)
    angle = 2 * math.atan2(np.linalg.norm(q[1:]), q[0])
    axis = q[1:] / max(np.linalg.norm(q[1:]), 1e-300)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def np_covariance(log_scales: np.ndarray, q: np.ndarray) -> np.ndarray:
    r = np_rotation(q.astype(np.float64))
    return r @ np.diag(np.exp(2 * log_scales.astype(np.float64))) @ r.T


def np_ink(log_scales: np.ndarray, opacity_logit: float) -> float:
    """Opacity x the ellipsoid's surface area (Thomsen's approximation, p = 1.6075)."""
    a, b, c = np.exp(log_scales.astype(np.float64))
    p = 1.6075
    area = 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)
    return area / (1 + math.exp(-float(opacity_logit)))


def as_columns(splats: SplatSet, rows) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(getattr(splats, name)[rows].astype(np.float64)) for name in COLUMNS}


def random_splats(n: int, seed: int, sh_degree: int = 1) -> SplatSet:
    rng = np.random.default_rng(seed)
    s = SplatSet.empty_like_columns(n, sh_degree)
    s.positions[:] = rng.normal(0, 0.3, (n, 3))
    s.log_scales[:] = rng.normal(-2.5, 0.6, (n, 3))
    s.rotations[:] = rng.normal(0, 1, (n, 4))
    s.opacity_logits[:] = rng.normal(0, 2, n)
    s.f_dc[:] = rng.normal(0, 1, (n, 3))
    s.f_rest[:] = rng.normal(0, 0.2, s.f_rest.shape)
    return s


# ---- the merge ------------------------------------------------------------------------------------------------


def test_pair_merge_matches_the_moments_computed_independently():
    s = random_splats(2, seed=3)
    merged = merge_pairs(as_columns(s, [0]), as_columns(s, [1]), TINY_FLOOR)

    w = np.array([np_ink(s.log_scales[k], s.opacity_logits[k]) for k in range(2)])
    mu = (w[:, None] * s.positions.astype(np.float64)).sum(0) / w.sum()
    cov = sum(w[k] * (np_covariance(s.log_scales[k], s.rotations[k])
                      + np.outer(s.positions[k] - mu, s.positions[k] - mu)) for k in range(2)) / w.sum()

    got_cov = np_covariance(merged["log_scales"][0].numpy(), merged["rotations"][0].numpy())
    np.testing.assert_allclose(merged["positions"][0].numpy(), mu, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got_cov, cov, rtol=1e-9, atol=1e-15)
    colour = (w[:, None] * s.f_dc.astype(np.float64)).sum(0) / w.sum()
    np.testing.assert_allclose(merged["f_dc"][0].numpy(), colour, atol=1e-12)
    rest = (w[:, None] * s.f_rest.astype(np.float64)).sum(0) / w.sum()
    np.testing.assert_allclose(merged["f_rest"][0].numpy(), rest, atol=1e-12)
    # Opacity: the ink over the merged ellipsoid's area, capped by the two stacked (whichever is lower).
    area = np_ink(merged["log_scales"][0].numpy(), math.inf)
    stacked = 1 - np.prod(1 - 1 / (1 + np.exp(-s.opacity_logits.astype(np.float64))))
    alpha = 1 / (1 + math.exp(-float(merged["opacity_logits"][0])))
    assert alpha == pytest.approx(min(w.sum() / area, stacked), rel=1e-9)


def test_identical_coincident_splats_keep_their_shape_and_stack_their_opacity():
    s = random_splats(1, seed=5)
    one = as_columns(s, [0])
    merged = merge_pairs(one, one, TINY_FLOOR)
    np.testing.assert_allclose(merged["positions"][0].numpy(), s.positions[0], atol=1e-7)
    np.testing.assert_allclose(np_covariance(merged["log_scales"][0].numpy(), merged["rotations"][0].numpy()),
                               np_covariance(s.log_scales[0], s.rotations[0]), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(merged["f_dc"][0].numpy(), s.f_dc[0], atol=1e-7)
    a = 1 / (1 + math.exp(-float(s.opacity_logits[0])))
    alpha = 1 / (1 + math.exp(-float(merged["opacity_logits"][0])))
    assert alpha == pytest.approx(1 - (1 - a) ** 2, rel=1e-9)  # the ink rule alone would give 2a


def test_degenerate_pairs_give_unit_rotations_and_finite_values():
    s = SplatSet.empty_like_columns(10, 1)
    s.positions[:] = [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [2, 0, 0], [2.1, 0, 0],
                      [3, 0, 0], [3, 0, 0], [1e4, 1e4, 1e4], [1e4, 1e4, 1e4 + 1]]
    s.log_scales[:] = -2.0
    s.log_scales[0:2] = -np.inf          # zero-size pair, coincident
    s.log_scales[2, 2] = -np.inf         # a flat 2DGS splat with a round one
    s.log_scales[4:6] = 50.0             # huge
    s.log_scales[6] = [-80, 40, 0]       # extreme axis ratios
    s.rotations[7] = 0.0                 # no rotation (identity, as the readers repair it)
    s.opacity_logits[:] = [np.inf, np.inf, -np.inf, 5, -30, 30, 0, 0, 100, -100]
    merged = merge_pairs(as_columns(s, [0, 2, 4, 6, 8]), as_columns(s, [1, 3, 5, 7, 9]), 1e-12)
    for name, values in merged.items():
        assert torch.isfinite(values).all(), name
    np.testing.assert_allclose(merged["rotations"].norm(dim=1).numpy(), 1.0, atol=1e-12)

    out = decimate(s, 3, seed=0)
    assert out.count == 3
    for name in COLUMNS:
        assert np.isfinite(getattr(out, name)).all(), name
    np.testing.assert_allclose(np.linalg.norm(out.rotations, axis=1), 1.0, atol=1e-6)


# ---- the matching ---------------------------------------------------------------------------------------------


def sequential_greedy(neighbours: np.ndarray, keys: np.ndarray) -> set[tuple[int, int]]:
    """Take the cheapest listed edge whose rows are both free, one at a time."""
    n, width = keys.shape
    edges = sorted((keys[i, d], i, int(neighbours[i, d])) for i in range(n) for d in range(width)
                   if neighbours[i, d] >= 0 and keys[i, d] != NO_EDGE)
    free = np.ones(n, bool)
    pairs = set()
    for _, i, j in edges:
        if free[i] and free[j]:
            free[i] = free[j] = False
            pairs.add((min(i, j), max(i, j)))
    return pairs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parallel_matching_equals_sequential_greedy(seed):
    """A random graph where some edges are listed by both rows (with different keys) and some by one."""
    rng = np.random.default_rng(seed)
    n, width = 300, 4
    neighbours = (np.arange(n)[:, None] + rng.integers(1, 12, (n, width)) * rng.choice([-1, 1], (n, width))) % n
    neighbours[rng.random((n, width)) < 0.1] = NONE
    keys = rng.permutation(n * width).reshape(n, width).astype(np.int64)
    first, second, pair_keys = match_pairs(torch.from_numpy(neighbours), torch.from_numpy(keys),
                                           iterations=10_000, chunk_rows=64)
    pairs = set(zip(first.tolist(), second.tolist(), strict=True))
    assert pairs == sequential_greedy(neighbours, keys)
    assert len({row for pair in pairs for row in pair}) == 2 * len(pairs)


def test_matching_stops_early_with_a_partial_greedy_matching():
    """On a ring whose edge keys rise along it, greedy's pairs depend on each other in a chain: each round can take
    only the next one, so 3 rounds take exactly greedy's first 3 pairs."""
    n = 400
    neighbours = np.stack([(np.arange(n) + 1) % n, (np.arange(n) - 1) % n], 1)
    ring = np.arange(n, dtype=np.int64)  # key of the edge (i, i+1)
    keys = np.stack([ring, np.roll(ring, 1)], 1)  # one key per ring edge, listed by both of its rows
    first, second, _ = match_pairs(torch.from_numpy(neighbours), torch.from_numpy(keys), iterations=3, chunk_rows=50)
    assert set(zip(first.tolist(), second.tolist(), strict=True)) == {(0, 1), (2, 3), (4, 5)}
    assert len(sequential_greedy(neighbours, keys)) == n // 2


def test_matching_with_equal_keys_at_one_row_takes_one_pair_the_same_way():
    """Equal keys at one row (equal costs and a hash collision) cannot match the row twice: it keeps the smaller
    partner, the other stays free."""
    neighbours = torch.tensor([[1, 2], [0, NONE], [0, NONE]])
    keys = torch.tensor([[5, 5], [5, NO_EDGE], [5, NO_EDGE]])
    first, second, pair_keys = match_pairs(neighbours, keys, iterations=8, chunk_rows=2)
    assert (first.tolist(), second.tolist(), pair_keys.tolist()) == ([0], [1], [5])


# ---- neighbours -----------------------------------------------------------------------------------------------


def test_neighbours_are_the_nearest_on_a_clustered_cloud():
    """Against brute force: most of the true 8 nearest are found, and every row listed is at least as near as
    the first one missed would be (the list is the nearest among the candidates, nearest first)."""
    rng = np.random.default_rng(2)
    centres = rng.uniform(-5, 5, (40, 3))
    points = centres[rng.integers(0, 40, 2000)] + rng.normal(0, 0.05, (2000, 3)) * rng.uniform(0.1, 3, (2000, 1))
    positions = torch.from_numpy(points.astype(np.float32))
    found = nearest_neighbours(positions, 8, chunk_rows=512).numpy()
    p = points.astype(np.float32).astype(np.float64)
    distance = ((p[:, None] - p[None]) ** 2).sum(-1)
    np.fill_diagonal(distance, np.inf)
    truth = np.argsort(distance, axis=1, kind="stable")[:, :8]
    recall = np.mean([len(set(found[i]) & set(truth[i])) / 8 for i in range(len(p))])
    assert recall > 0.9, recall
    listed = np.take_along_axis(distance, found, 1)
    assert np.all(np.diff(listed, axis=1) >= 0) and np.all(found != np.arange(len(p))[:, None])
    assert all(len(set(row)) == 8 for row in found)


def test_neighbours_of_tiny_and_coincident_sets():
    one = nearest_neighbours(torch.zeros((1, 3)), 4, chunk_rows=8)
    assert one.tolist() == [[NONE] * 4]
    three = nearest_neighbours(torch.tensor([[0.0, 0, 0], [0, 0, 0], [1, 0, 0]]), 4, chunk_rows=2)
    assert three[:, :2].tolist() == [[1, 2], [0, 2], [0, 1]] and (three[:, 2:] == NONE).all()


# ---- decimation -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene() -> SplatSet:
    """A generated scene with unit quaternions (kept splats keep theirs, merged ones get unit ones)."""
    s = generate_scene(2000, sh_degree=2, seed=1)
    s.rotations /= np.linalg.norm(s.rotations, axis=1, keepdims=True)
    return s


@pytest.mark.parametrize("target", [1999, 1000, 333, 1])
def test_count_hits_the_target_exactly(scene, target):
    out = decimate(scene, target, seed=0)
    assert out.count == target
    assert out.sh_degree == scene.sh_degree
    np.testing.assert_allclose(np.linalg.norm(out.rotations, axis=1), 1.0, atol=1e-6)


def test_same_seed_same_arrays(scene):
    a = decimate(scene, 700, seed=7)
    b = decimate(scene, 700, seed=7)
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_input_is_left_alone_and_the_full_count_is_a_copy(scene):
    before = scene.positions.copy()
    same = decimate(scene, scene.count)
    decimate(scene, 100)
    np.testing.assert_array_equal(scene.positions, before)
    np.testing.assert_array_equal(np.sort(same.positions, axis=0), np.sort(before, axis=0))
    with pytest.raises(ValueError):
        decimate(scene, 0)


def test_jacobi_eigendecomposition_matches_numpy():
    """symmetric_eigh (Jacobi rotations, not cuSOLVER) on random, diagonal, repeated and badly scaled matrices."""
    from sogs_compressor.lod.moments import symmetric_eigh

    generator = torch.Generator().manual_seed(4)
    a = torch.randn(1000, 3, 3, dtype=torch.float64, generator=generator)
    cov = a @ a.transpose(1, 2)
    cov[0] = torch.diag(torch.tensor([1e-30, 1.0, 1e50], dtype=torch.float64))
    cov[1] = torch.eye(3, dtype=torch.float64)
    cov[2] = torch.tensor([[2.0, 1, 0], [1, 2, 0], [0, 0, 1]], dtype=torch.float64)
    cov[3] = torch.tensor([[1.0, 1e-20, 0], [1e-20, 1, 0], [0, 0, 1e-8]], dtype=torch.float64)
    values, vectors = symmetric_eigh(cov)
    expected = np.linalg.eigvalsh(cov.numpy())
    scale = np.abs(expected).max(axis=1, keepdims=True)
    np.testing.assert_allclose(np.sort(values.numpy(), axis=1) / scale, expected / scale, atol=1e-13)
    rebuilt = vectors @ torch.diag_embed(values) @ vectors.transpose(1, 2)
    np.testing.assert_allclose((rebuilt - cov).numpy() / scale[:, :, None], 0.0, atol=1e-13)
    np.testing.assert_allclose((vectors.transpose(1, 2) @ vectors).numpy(), np.broadcast_to(np.eye(3), cov.shape),
                               atol=1e-13)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_decimation_is_repeatable_and_its_memory_follows_the_scene(scene):
    """On the GPU: exact count, the same arrays twice, and a device peak sized by the scene, not by a solver's
    workspace (the first GPU runs peaked at 8.3 GiB even at 90K splats; 2,000 splats need a few MB)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    a = decimate(scene, 700, device="cuda", seed=7)
    peak = torch.cuda.max_memory_allocated() - before
    b = decimate(scene, 700, device="cuda", seed=7)
    assert a.count == 700
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB for 2,000 splats"
