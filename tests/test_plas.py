"""PLAS ordering: building blocks against brute force, whole-run properties, and the feature builder."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from sogs_compressor.order.plas import (
    DEFAULT_WEIGHTS,
    PinnedTiles,
    _perm_tables,
    best_group_permutations,
    blur_grid,
    blur_matrix,
    group_dots,
    hashed_permutation,
    plas_features,
    plas_grid_side,
    plas_order,
    plas_step,
    radius_schedule,
    tile_cells,
)
from sogs_compressor.splats import SplatSet

CPU = torch.device("cpu")


def neighbour_distance(features: np.ndarray, order: np.ndarray, width: int) -> float:
    """Mean squared distance between horizontal and vertical neighbours of the row-major grid."""
    n = len(order)
    rows = -(-n // width)
    grid = np.full((rows * width, features.shape[1]), np.nan)
    grid[:n] = features[order]
    grid = grid.reshape(rows, width, -1)
    dh = ((grid[:, 1:] - grid[:, :-1]) ** 2).sum(-1)
    dv = ((grid[1:] - grid[:-1]) ** 2).sum(-1)
    both = np.concatenate([dh.ravel(), dv.ravel()])
    return float(np.nanmean(both))


@pytest.mark.parametrize(
    ("n", "side"), [(1, 4), (16, 4), (17, 8), (1000, 32), (1_000_000, 1000), (3_000_000, 1736)]
)
def test_grid_side_is_the_sog_texture_width(n: int, side: int) -> None:
    assert plas_grid_side(n) == side


def test_radius_schedule_shrinks_by_five_percent() -> None:
    radii = radius_schedule(1024)
    assert radii[0] == 511 and radii[-1] == 1
    assert 115 <= len(radii) <= 125  # about 122 steps for W = 1024 (formats.md 4.4)


@pytest.mark.parametrize("mode", ["circular", "reflect"])
def test_blur_matrix_matches_padded_convolution(mode: str) -> None:
    size, kernel = 23, 9
    m = blur_matrix(size, kernel, mode, CPU)
    x = torch.randn(3, size, generator=torch.Generator().manual_seed(0))
    half = kernel // 2
    w = torch.exp(-(torch.arange(-half, half + 1, dtype=torch.float64) ** 2) / (2 * kernel**2))
    w = (w / w.sum()).float()
    padded = torch.nn.functional.pad(x[:, None, :], (half, half), mode=mode)
    expected = torch.nn.functional.conv1d(padded, w.flip(0)[None, None, :])[:, 0]
    torch.testing.assert_close(x @ m, expected, rtol=1e-5, atol=1e-6)


def test_masked_blur_ignores_padding_cells() -> None:
    g = torch.Generator().manual_seed(1)
    grid = torch.randn(6, 8, 2, generator=g)
    mask = torch.ones(6, 8, dtype=torch.bool)
    mask[5, 5:] = False
    changed = grid.clone()
    changed[5, 5:] = 1e6  # whatever sits in padding must not leak into the target
    torch.testing.assert_close(blur_grid(grid, mask, 5, 3), blur_grid(changed, mask, 5, 3))
    flat = torch.full((6, 8, 1), 2.5)
    torch.testing.assert_close(blur_grid(flat, mask, 5, 3), flat)


def test_tile_cells_cover_distinct_cells_of_the_rolled_grid() -> None:
    cells = tile_cells(10, 14, 4, dy=3, dx=1, device=CPU)
    assert cells.shape == (2 * 3, 16)
    assert len(torch.unique(cells)) == cells.numel()
    # first tile starts at rolled (0, 0) = grid (-3 mod 10, -1 mod 14)
    assert int(cells[0, 0]) == 7 * 14 + 13


def test_hashed_permutation_is_a_seeded_permutation() -> None:
    a = hashed_permutation(1024, 12345, CPU)
    assert torch.equal(torch.sort(a).values, torch.arange(1024))
    assert torch.equal(a, hashed_permutation(1024, 12345, CPU))
    assert not torch.equal(a, hashed_permutation(1024, 12346, CPU))


def test_group_dot_formulations_agree() -> None:
    g = torch.Generator().manual_seed(11)
    values, targets = torch.randn(5, 7, 4, 14, generator=g), torch.randn(5, 7, 4, 14, generator=g)
    expected = torch.einsum("tgic,tgjc->tgij", values.double(), targets.double()).float()
    torch.testing.assert_close(group_dots(values, targets, broadcast=True), expected)
    torch.testing.assert_close(group_dots(values, targets, broadcast=False), expected)


def _brute_best(values: np.ndarray, targets: np.ndarray, movable: np.ndarray) -> int:
    best, best_cost = 0, np.inf
    for p, perm in enumerate(itertools.permutations(range(4))):
        if any(perm[i] != i and not (movable[i] and movable[perm[i]]) for i in range(4)):
            continue
        cost = sum(((values[i] - targets[perm[i]]) ** 2).sum() for i in range(4))
        if cost < best_cost - 1e-9:
            best, best_cost = p, cost
    return best


def test_best_group_permutation_matches_brute_force_with_pinned_cells() -> None:
    g = torch.Generator().manual_seed(2)
    values = torch.randn(3, 5, 4, 3, generator=g)
    targets = torch.randn(3, 5, 4, 3, generator=g)
    movable = torch.rand(3, 20, generator=g) > 0.3
    movable[0] = True
    _, onehot = _perm_tables(CPU)
    pinned = PinnedTiles.find(movable)
    assert pinned is not None and pinned.tiles.tolist() == [1, 2]
    best, gain = best_group_permutations(values, targets, pinned, onehot)
    mov = movable.reshape(3, 5, 4).numpy()
    for t in range(3):
        for grp in range(5):
            assert int(best[t, grp]) == _brute_best(
                values[t, grp].numpy(), targets[t, grp].numpy(), mov[t, grp]
            )
    assert torch.all(gain >= -1e-5)


def test_plas_step_moves_only_within_groups_and_reports_the_distance_drop() -> None:
    g = torch.Generator().manual_seed(3)
    values = torch.randn(4, 16, 3, generator=g)
    targets = torch.randn(4, 16, 3, generator=g)
    ids = torch.arange(64).reshape(4, 16)
    inverse, onehot = _perm_tables(CPU)
    before = float(((values - targets) ** 2).sum())
    new_values, (new_ids,), gain = plas_step(values, [ids], targets, None, inverse, onehot)
    after = float(((new_values - targets) ** 2).sum())
    assert after <= before
    assert after == pytest.approx(before - gain, rel=1e-5)
    # each group of 4 slots holds the same ids as before, and values travelled with their ids
    assert torch.equal(new_ids.reshape(4, 4, 4).sort(-1).values, ids.reshape(4, 4, 4))
    torch.testing.assert_close(new_values, values.reshape(64, 3)[new_ids.reshape(-1)].reshape(4, 16, 3))


@pytest.mark.parametrize(
    ("n", "width"),
    [(1, None), (2, None), (5, None), (17, None), (260, None), (1000, 32), (999, 10), (300, 400)],
)
def test_plas_order_is_a_permutation_for_any_n(n: int, width: int | None) -> None:
    feats = np.random.default_rng(n).random((n, 3), dtype=np.float32)
    order = plas_order(feats, seed=1, width=width, improvement_break=1e-2)
    assert order.dtype == np.int64
    assert np.array_equal(np.sort(order), np.arange(n))


def test_plas_order_is_deterministic_per_seed() -> None:
    feats = np.random.default_rng(4).random((500, 3), dtype=np.float32)
    a = plas_order(feats, seed=7, improvement_break=1e-3)
    assert np.array_equal(a, plas_order(feats, seed=7, improvement_break=1e-3))
    assert not np.array_equal(a, plas_order(feats, seed=8, improvement_break=1e-3))


def test_plas_makes_grid_neighbours_similar_with_padding() -> None:
    # 1000 random colours on a 32-wide grid: 32 rows, the last one 8 cells short (padding pinned at its end)
    n = 1000
    feats = np.random.default_rng(5).random((n, 3), dtype=np.float32)
    width = plas_grid_side(n)
    assert width * -(-n // width) > n
    events: list[float] = []
    order = plas_order(feats, seed=0, progress=lambda stage, f: events.append(f))
    shuffled = neighbour_distance(feats, np.random.default_rng(0).permutation(n), width)
    sorted_ = neighbour_distance(feats, order, width)
    assert sorted_ < 0.15 * shuffled
    assert events[0] == 0.0 and events[-1] == 1.0 and events == sorted(events)


def test_coarser_break_is_faster_but_still_sorts() -> None:
    n = 4096
    feats = np.random.default_rng(6).random((n, 3), dtype=np.float32)
    steps = {}
    for brk in (1e-2, 1e-4):
        calls: list[float] = []
        order = plas_order(feats, seed=0, improvement_break=brk, progress=lambda s, f, c=calls: c.append(f))
        steps[brk] = neighbour_distance(feats, order, 64)
        assert len(calls) > 10
    assert steps[1e-4] <= steps[1e-2] * 1.05
    assert steps[1e-2] < 0.2 * neighbour_distance(feats, np.random.default_rng(0).permutation(n), 64)


def test_plas_order_rejects_bad_features() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        plas_order(np.array([[0.0], [np.nan]], np.float32))
    with pytest.raises(ValueError, match="shape"):
        plas_order(np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="width"):
        plas_order(np.zeros((4, 3), np.float32), width=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_and_cpu_sort_equally_well() -> None:
    feats = np.random.default_rng(8).random((4096, 3), dtype=np.float32)
    on_cpu = plas_order(feats, seed=3, device="cpu", improvement_break=1e-3)
    on_gpu = plas_order(feats, seed=3, device="cuda", improvement_break=1e-3)
    assert np.array_equal(np.sort(on_gpu), np.arange(4096))
    # same random choices; float rounding of the blur may flip near-ties, so compare quality, not bytes
    assert neighbour_distance(feats, on_gpu, 64) == pytest.approx(
        neighbour_distance(feats, on_cpu, 64), rel=0.1
    )


# ---------------------------------------------------------------------------------------------------------


def _scene(n: int, seed: int = 0, sh_degree: int = 1) -> SplatSet:
    rng = np.random.default_rng(seed)
    s = SplatSet.empty_like_columns(n, sh_degree=sh_degree)
    s.positions[:] = rng.normal(size=(n, 3)) * [10, 1, 3]
    s.log_scales[:] = rng.normal(-4, 1, size=(n, 3))
    s.rotations[:] = rng.normal(size=(n, 4))
    s.opacity_logits[:] = rng.normal(size=n)
    s.f_dc[:] = rng.normal(size=(n, 3))
    s.f_rest[:] = rng.normal(size=s.f_rest.shape)
    return s


def test_plas_features_groups_have_their_weight_as_spread() -> None:
    feats = plas_features(_scene(5000))
    assert feats.shape == (5000, 3 + 3 + 3 + 1 + 4) and feats.dtype == np.float32
    sizes = {"position": 3, "colour": 3, "scale": 3, "opacity": 1, "rotation": 4}
    start = 0
    for name, cols in sizes.items():
        block = feats[:, start : start + cols].astype(np.float64)
        assert np.mean((block**2).sum(1)) == pytest.approx(DEFAULT_WEIGHTS[name] ** 2, rel=1e-3)
        start += cols


def test_plas_features_weights_select_groups() -> None:
    scene = _scene(300)
    feats = plas_features(scene, {"sh": 2.0, "rotation": 0.0, "opacity": 0.0})
    assert feats.shape == (300, 3 + 3 + 3 + 9)
    assert np.mean((feats[:, -9:].astype(np.float64) ** 2).sum(1)) == pytest.approx(4.0, rel=1e-3)
    with pytest.raises(ValueError, match="unknown"):
        plas_features(scene, {"colour_typo": 1.0})
    with pytest.raises(ValueError, match="zero"):
        plas_features(scene, dict.fromkeys(DEFAULT_WEIGHTS, 0.0))
    with pytest.raises(ValueError, match=">= 0"):
        plas_features(scene, {"position": -1.0})


def test_plas_features_survive_flat_and_degenerate_splats() -> None:
    scene = _scene(200, sh_degree=0)
    scene.log_scales[:50, 2] = -np.inf  # 2DGS: flat along z
    scene.rotations[:10] = 0.0  # unnormalizable quaternion
    scene.f_dc[:] = 0.25  # constant colour: zero spread
    feats = plas_features(scene)
    assert np.isfinite(feats).all()
    order = plas_order(feats, improvement_break=1e-2)
    assert np.array_equal(np.sort(order), np.arange(200))


def test_plas_orders_a_scene_more_smoothly_than_shuffling() -> None:
    scene = _scene(2000, seed=9)
    feats = plas_features(scene)
    width = plas_grid_side(2000)
    order = plas_order(feats, seed=0, improvement_break=1e-3)
    assert neighbour_distance(feats, order, width) < 0.5 * neighbour_distance(feats, np.arange(2000), width)
