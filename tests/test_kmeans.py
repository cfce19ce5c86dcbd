"""SH-palette k-means and nearest-centroid assignment, against brute force and their stated contracts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sogs_compressor.errors import InvalidValuesError
from sogs_compressor.quantize.assign import (
    nearest_centroid,
    nearest_centroid_with_distance,
    nearest_centroids_topk,
)
from sogs_compressor.quantize.kmeans import (
    allocate_sub_palettes,
    choose_method,
    kmeans,
    palette_size_rule,
    probed_nearest,
    update_centroids,
)


def _correlated(n: int, d: int, seed: int) -> np.ndarray:
    """Low-rank structure plus heavy-tailed noise, like SH coefficients of a trained scene."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 5))
    w = rng.normal(size=(5, d)) * 0.2
    return (np.tanh(z @ w) * 0.4 + rng.laplace(scale=0.02, size=(n, d))).astype(np.float32)


def _brute_dist(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    p, c = points.astype(np.float64), centroids.astype(np.float64)
    return ((p[:, None, :] - c[None, :, :]) ** 2).sum(-1)


@pytest.mark.parametrize(("n", "expected"), [(1000, 512), (1024, 1024), (65536, 65536), (10_000_000, 65536),
                                             (1, 1), (3, 2), (2047, 1024), (2048, 2048), (0, 0)])
def test_palette_size_rule(n: int, expected: int) -> None:
    assert palette_size_rule(n) == expected


@pytest.mark.parametrize("chunk_rows", [1, 97, 256, None])
def test_nearest_centroid_matches_brute_force(chunk_rows: int | None) -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(500, 9)).astype(np.float32)
    centroids = rng.normal(size=(300, 9)).astype(np.float32)
    labels = nearest_centroid(torch.from_numpy(points), torch.from_numpy(centroids), chunk_rows).numpy()
    assert labels.dtype == np.int64 and labels.shape == (500,)
    dist = _brute_dist(points, centroids)
    chosen = dist[np.arange(500), labels]
    np.testing.assert_allclose(chosen, dist.min(axis=1), rtol=1e-5, atol=1e-5)
    # Where the nearest centroid is clearly nearest, the label itself must agree.
    two = np.sort(dist, axis=1)[:, :2]
    clear = two[:, 1] - two[:, 0] > 1e-3
    np.testing.assert_array_equal(labels[clear], dist.argmin(axis=1)[clear])


def test_distances_and_topk() -> None:
    rng = np.random.default_rng(1)
    points = rng.normal(size=(400, 24)).astype(np.float32)
    centroids = rng.normal(size=(50, 24)).astype(np.float32)
    dist = _brute_dist(points, centroids)
    _, d = nearest_centroid_with_distance(torch.from_numpy(points), torch.from_numpy(centroids), 33)
    np.testing.assert_allclose(d.numpy(), dist.min(axis=1), rtol=1e-4)
    top = nearest_centroids_topk(torch.from_numpy(points), torch.from_numpy(centroids), 3, 64).numpy()
    np.testing.assert_array_equal(top[:, 0], dist.argmin(axis=1))
    np.testing.assert_allclose(np.take_along_axis(dist, top, 1), np.sort(dist, axis=1)[:, :3], rtol=1e-5)


def test_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        nearest_centroid(torch.zeros(3, 4), torch.zeros(2, 5))
    with pytest.raises(ValueError):
        nearest_centroid(torch.zeros(3, 4), torch.zeros(0, 4))


def test_same_seed_same_result_other_seed_differs() -> None:
    data = _correlated(3000, 24, 2)
    a = kmeans(data, 128, iterations=5, seed=7)
    b = kmeans(data.copy(), 128, iterations=5, seed=7)
    c = kmeans(data, 128, iterations=5, seed=8)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.sse == b.sse
    assert not np.array_equal(a.centroids, c.centroids)


def test_result_contract_flat() -> None:
    data = _correlated(4000, 9, 3)
    r = kmeans(data, 256, iterations=6, seed=0, method="flat")
    assert r.method == "flat" and 1 <= r.iterations <= 6
    assert r.centroids.dtype == np.float32 and r.centroids.shape[1] == 9 and r.centroids.shape[0] <= 256
    assert r.labels.dtype == np.int32 and r.labels.shape == (4000,)
    # Every centroid is used and is the mean of its members (the update after the last assignment).
    counts = np.bincount(r.labels, minlength=r.centroids.shape[0])
    assert counts.min() >= 1
    sums = np.zeros(r.centroids.shape, np.float64)
    np.add.at(sums, r.labels, data)
    np.testing.assert_allclose(r.centroids, sums / counts[:, None], rtol=1e-5, atol=1e-6)
    sse = ((data.astype(np.float64) - r.centroids[r.labels]) ** 2).sum()
    assert r.sse == pytest.approx(sse, rel=1e-6)


def test_more_iterations_do_not_hurt() -> None:
    data = _correlated(4000, 24, 4)
    sse = [kmeans(data, 64, iterations=i, seed=1, method="flat").sse for i in (0, 1, 3, 10)]
    assert sse[0] > sse[1] >= sse[2] >= sse[3]


@pytest.mark.parametrize("n", [1, 5, 100])
def test_few_points_are_their_own_palette(n: int) -> None:
    rng = np.random.default_rng(5)
    data = rng.normal(size=(n, 45)).astype(np.float32)
    data[n // 2 :] = data[0]  # duplicates collapse into one centroid
    r = kmeans(data, 128)
    assert r.method == "exact" and r.sse == 0.0
    assert r.centroids.shape[0] == len(np.unique(data, axis=0))
    np.testing.assert_array_equal(r.centroids[r.labels], data)


def test_many_points_few_distinct_rows_are_exact() -> None:
    """A decoded SOG (rows already from a palette) keeps its palette losslessly."""
    rng = np.random.default_rng(6)
    palette = rng.normal(size=(200, 24)).astype(np.float32)
    data = palette[rng.integers(0, 200, 5000)]
    r = kmeans(data, 256)
    assert r.method == "exact" and r.sse == 0.0
    np.testing.assert_array_equal(r.centroids[r.labels], data)


def test_empty_clusters_are_reseeded_with_farthest_points() -> None:
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [0.0, 5.0]])
    centroids = torch.tensor([[0.0, 0.0], [100.0, 100.0], [200.0, 200.0]])
    labels = torch.zeros(4, dtype=torch.int64)  # clusters 1 and 2 are empty
    new, reseeded = update_centroids(x, labels, centroids)
    assert reseeded == 2
    np.testing.assert_allclose(new[0].numpy(), x.mean(0).numpy(), rtol=1e-6)
    # Farthest from the new centroid (2.525, 1.25): (10, 0), then (0, 5).
    np.testing.assert_array_equal(new[1].numpy(), [10.0, 0.0])
    np.testing.assert_array_equal(new[2].numpy(), [0.0, 5.0])


def test_duplicate_initial_points_end_up_used() -> None:
    """Many copies of one point make the random init pick duplicates: their clusters empty and get re-seeded."""
    rng = np.random.default_rng(7)
    data = np.concatenate([np.zeros((3000, 9)), rng.normal(size=(600, 9))]).astype(np.float32)
    r = kmeans(data, 100, iterations=10, seed=0, method="flat")
    assert r.centroids.shape[0] >= 95
    assert len(np.unique(r.centroids, axis=0)) == r.centroids.shape[0]


def test_non_finite_input_is_a_clear_error() -> None:
    data = _correlated(200, 9, 8)
    data[3, 4] = np.nan
    with pytest.raises(InvalidValuesError, match="non-finite"):
        kmeans(data, 16)


def test_allocate_sub_palettes() -> None:
    error = np.array([10.0, 0.0, 5.0, 1e-9, 3.0])
    size = np.array([1000, 50, 3, 200, 0])
    alloc = allocate_sub_palettes(error, size, 300)
    assert alloc.sum() == 300
    assert alloc[4] == 0 and np.all(alloc[:4] >= 1) and np.all(alloc <= size)
    assert alloc[2] == 3  # capped at its size
    assert alloc[0] > alloc[3]


def test_probed_search_with_all_probes_is_exact() -> None:
    rng = np.random.default_rng(9)
    x = torch.from_numpy(rng.normal(size=(800, 9)).astype(np.float32))
    centroids = torch.from_numpy(rng.normal(size=(90, 9)).astype(np.float32))
    group = torch.from_numpy(rng.integers(0, 6, 90))
    probes = torch.arange(6).repeat(800, 1)
    got = probed_nearest(x, probes, centroids, group)
    dist = _brute_dist(x.numpy(), centroids.numpy())
    np.testing.assert_allclose(dist[np.arange(800), got.numpy()], dist.min(1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("d", [24, 45])
def test_hierarchical_close_to_flat(d: int) -> None:
    data = _correlated(8000, d, 10)
    flat = kmeans(data, 512, iterations=10, seed=0, method="flat")
    fast = kmeans(data, 512, iterations=10, seed=0, method="hierarchical")
    assert fast.method == "hierarchical"
    assert fast.centroids.shape[0] <= 512 and fast.labels.max() < fast.centroids.shape[0]
    assert fast.sse <= flat.sse * 1.05, (fast.sse, flat.sse)


def test_auto_method_choice() -> None:
    assert choose_method(10_000, 1024, 45, torch.device("cpu")) == "flat"
    assert choose_method(100_000, 65536, 45, torch.device("cpu")) == "hierarchical"
    assert choose_method(100_000, 65536, 45, torch.device("cuda")) == "flat"
    assert choose_method(4_000_000, 65536, 45, torch.device("cuda")) == "flat"
    assert choose_method(40_000_000, 65536, 45, torch.device("cuda")) == "hierarchical"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu() -> None:
    data = _correlated(5000, 24, 11)
    for method in ("flat", "hierarchical"):
        cpu = kmeans(data, 256, iterations=5, seed=3, method=method)
        gpu = kmeans(data, 256, iterations=5, seed=3, device="cuda", method=method)
        gpu2 = kmeans(data, 256, iterations=5, seed=3, device="cuda", method=method)
        np.testing.assert_array_equal(gpu.labels, gpu2.labels)
        np.testing.assert_array_equal(gpu.centroids, gpu2.centroids)
        assert gpu.sse == pytest.approx(cpu.sse, rel=0.02)


def test_large_inputs_iterate_on_a_sample_then_assign_every_row(monkeypatch):
    """Past SAMPLE_FACTOR * k rows, Lloyd runs on a sample; then every row is assigned and every centroid is the
    mean of its members, and the error stays close to Lloyd on all rows."""
    from sogs_compressor.quantize import kmeans as km

    rng = np.random.default_rng(11)
    data = rng.normal(size=(3000, 9)).astype(np.float32)
    full = km.kmeans(data, 32, iterations=5, seed=3)
    monkeypatch.setattr(km, "SAMPLE_MIN_ROWS", 64)
    monkeypatch.setattr(km, "SAMPLE_FACTOR", 8)
    result = km.kmeans(data, 32, iterations=5, seed=3)
    assert result.method == "flat" and result.centroids.shape[0] <= 32
    assert result.sse < 1.1 * full.sse
    for c in range(result.centroids.shape[0]):
        members = data[result.labels == c]
        assert np.allclose(result.centroids[c], members.mean(0), atol=1e-5)
    again = km.kmeans(data, 32, iterations=5, seed=3)
    assert np.array_equal(again.labels, result.labels)


def test_chunked_sorted_segment_sums_match_index_add(monkeypatch):
    from sogs_compressor.quantize import kmeans as km

    monkeypatch.setattr(km, "SUM_CHUNK_ROWS", 7)
    rng = np.random.default_rng(12)
    x = torch.from_numpy(rng.normal(size=(50, 4)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 6, 50))
    expected = torch.zeros(6, 4, dtype=torch.float64).index_add_(0, labels, x.double())
    assert torch.allclose(km.sorted_segment_sums(x, labels, 6), expected)


def test_negative_zero_rows_share_one_exact_entry() -> None:
    """-0.0 and +0.0 are the same value to the palette (hash and uniqueness both)."""
    rng = np.random.default_rng(8)
    palette = rng.normal(size=(30, 9)).astype(np.float32)
    palette[:, 3] = 0.0
    data = palette[rng.integers(0, 30, 2000)]
    data[::2, 3] = -0.0
    r = kmeans(data, 30)
    assert r.method == "exact" and r.centroids.shape[0] == 30 and r.sse == 0.0


def test_non_finite_input_is_refused_with_a_count() -> None:
    data = np.zeros((600_000, 3), np.float32)
    data[599_999, 2] = np.nan
    data[3, 0] = np.inf
    with pytest.raises(InvalidValuesError, match="2 non-finite"):
        kmeans(data, 4)


# --- weighted k-means (the SH palette weights each splat by its footprint) ------------------------------------


def test_weighted_update_takes_weighted_means_and_plain_means_for_weightless_clusters():
    x = torch.tensor([[0.0], [1.0], [10.0], [12.0]])
    labels = torch.tensor([0, 0, 1, 1])
    weights = torch.tensor([3.0, 1.0, 0.0, 0.0])
    new, reseeded = update_centroids(x, labels, torch.zeros(2, 1), weights)
    assert reseeded == 0
    assert new[0, 0].item() == pytest.approx(0.25)  # (3 * 0 + 1 * 1) / 4
    assert new[1, 0].item() == pytest.approx(11.0)  # every member weighs 0: their plain mean


def test_weighted_empty_cluster_is_reseeded_with_the_row_of_largest_weighted_error():
    x = torch.tensor([[0.0], [5.0], [4.0], [100.0]])
    labels = torch.tensor([0, 0, 0, 0])
    # Unweighted, row 3 (at 100) is the farthest; its weight makes its weighted error negligible.
    weights = torch.tensor([1.0, 1000.0, 1.0, 1e-6])
    new, reseeded = update_centroids(x, labels, torch.zeros(2, 1), weights)
    assert reseeded == 1
    assert new[1, 0].item() != 100.0
    expected_mean = (0.0 * 1 + 5.0 * 1000 + 4.0 * 1 + 100.0 * 1e-6) / (1002 + 1e-6)
    errors = weights * (x[:, 0] - expected_mean) ** 2
    assert new[1, 0].item() == x[int(errors.argmax()), 0].item()


def test_weighted_segment_sums_agree_on_both_paths(monkeypatch):
    from sogs_compressor.quantize import kmeans as km

    monkeypatch.setattr(km, "SUM_CHUNK_ROWS", 7)
    rng = np.random.default_rng(13)
    x = torch.from_numpy(rng.normal(size=(50, 4)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 6, 50))
    w = torch.from_numpy(rng.random(50).astype(np.float32))
    sums, totals = km.segment_sums(x, labels, 6, w)  # CPU: index_add_
    both = km.sorted_segment_sums(x, labels, 6, w)  # the CUDA path, run here on the CPU
    assert torch.allclose(both[:, :4], sums) and torch.allclose(both[:, 4], totals)
    assert torch.allclose(totals, torch.zeros(6, dtype=torch.float64).index_add_(0, labels, w.double()))


@pytest.mark.parametrize("method", ["flat", "hierarchical"])
def test_unit_weights_give_the_unweighted_palette(method):
    data = _correlated(3000, 9, seed=5)
    plain = kmeans(data, 64, iterations=5, seed=2, method=method)
    ones = kmeans(data, 64, iterations=5, seed=2, method=method, weights=np.ones(3000, np.float32))
    assert np.array_equal(plain.labels, ones.labels)
    assert np.allclose(plain.centroids, ones.centroids, atol=1e-6)


@pytest.mark.parametrize("method", ["flat", "hierarchical"])
def test_weights_move_entries_to_the_rows_that_matter(method):
    """A small heavy group gets a much smaller error when weighted, the rest pays a little more."""
    data = _correlated(4000, 9, seed=6)
    heavy = np.zeros(4000, bool)
    heavy[::40] = True  # 100 rows
    weights = np.where(heavy, 100.0, 1.0).astype(np.float32)

    def errors(result):
        err = ((data - result.centroids[result.labels]) ** 2).sum(1)
        return err[heavy].mean(), err[~heavy].mean()

    plain = errors(kmeans(data, 64, iterations=10, seed=0, method=method))
    weighted = errors(kmeans(data, 64, iterations=10, seed=0, method=method, weights=weights))
    assert weighted[0] < 0.5 * plain[0]
    assert weighted[1] > plain[1]


def test_weighted_kmeans_on_a_sample_weighs_every_row_in_the_final_means(monkeypatch):
    from sogs_compressor.quantize import kmeans as km

    monkeypatch.setattr(km, "SAMPLE_MIN_ROWS", 500)
    monkeypatch.setattr(km, "SAMPLE_FACTOR", 4)
    data = _correlated(5000, 9, seed=7)
    weights = np.random.default_rng(1).random(5000).astype(np.float32) + 0.01
    result = km.kmeans(data, 32, iterations=5, seed=3, weights=weights)
    for c in range(result.centroids.shape[0]):
        members = result.labels == c
        expected = (data[members] * weights[members, None]).sum(0) / weights[members].sum()
        assert np.allclose(result.centroids[c], expected, atol=1e-5)


@pytest.mark.parametrize("weights", [np.ones(10), np.full(20, -1.0), np.full(20, np.nan)])
def test_bad_weights_are_refused(weights):
    with pytest.raises(ValueError, match="weights"):
        kmeans(_correlated(20, 9, seed=1), 4, weights=weights)


def test_exact_palette_ignores_weights():
    data = np.repeat(_correlated(10, 9, seed=2), 3, axis=0)
    result = kmeans(data, 16, weights=np.arange(30, dtype=np.float32))
    assert result.method == "exact" and result.sse == 0.0


def test_distance_blocks_of_any_size_give_the_same_labels_and_distances() -> None:
    """The CPU's cache-sized blocks (compute_policy.distance_block_rows) must not change the output: each
    distance is one row's sum over D, whatever the block (what "same bytes" for the speed work rests on)."""
    x = torch.from_numpy(_correlated(5000, 24, seed=3))
    centroids = x[torch.randperm(5000, generator=torch.Generator().manual_seed(0))[:300]].clone()
    reference = nearest_centroid_with_distance(x, centroids, chunk_rows=5000)
    for rows in (64, 97, 256, 4099, 4990):  # 4990: a last block of 10 rows, joined to the one before
        labels, dists = nearest_centroid_with_distance(x, centroids, chunk_rows=rows)
        assert torch.equal(labels, reference[0]) and torch.equal(dists, reference[1]), rows
    topk = nearest_centroids_topk(x, centroids, 3, chunk_rows=5000)
    assert torch.equal(nearest_centroids_topk(x, centroids, 3, chunk_rows=64), topk)


@pytest.mark.parametrize("weighted", [False, True])
def test_cpu_block_budget_and_kept_rows_leave_the_palette_unchanged(monkeypatch, weighted: bool) -> None:
    """The hierarchical k-means on the CPU with tiny distance blocks (many blocks per probed cluster) and with
    the float64 rows made afresh for every update gives the palette of the default blocks and kept rows."""
    from sogs_compressor import compute_policy
    from sogs_compressor.quantize import kmeans as kmeans_module

    data = _correlated(6000, 9, seed=5)
    weights = np.random.default_rng(1).uniform(0.0, 2.0, 6000).astype(np.float32) if weighted else None
    default = kmeans(data, 512, iterations=4, seed=2, method="hierarchical", weights=weights)
    monkeypatch.setitem(compute_policy.DISTANCE_BLOCK_BYTES, "cpu", 4 * 512)
    monkeypatch.setattr(compute_policy, "MIN_DISTANCE_BLOCK_ROWS", 3)

    class Fresh(kmeans_module.RowsForSums):
        def of(self, x, w):  # what every update did before the rows were kept
            return kmeans_module._float64_rows(x, w)

    monkeypatch.setattr(kmeans_module, "RowsForSums", Fresh)
    small = kmeans(data, 512, iterations=4, seed=2, method="hierarchical", weights=weights)
    np.testing.assert_array_equal(small.labels, default.labels)
    np.testing.assert_array_equal(small.centroids, default.centroids)


def test_row_blocks_join_a_short_last_block() -> None:
    from sogs_compressor.quantize.assign import SHORT_BLOCK_ROWS, row_blocks

    assert row_blocks(0, 1000, 300) == [(0, 300), (300, 600), (600, 900), (900, 1000)]  # 100 rows: not short
    assert row_blocks(5, 5 + 600 + SHORT_BLOCK_ROWS - 1, 300) == [(5, 305), (305, 5 + 600 + SHORT_BLOCK_ROWS - 1)]
    assert row_blocks(0, 10, 300) == [(0, 10)] and row_blocks(3, 3, 8) == []


def test_kept_rows_follow_the_rows_they_were_made_from() -> None:
    from sogs_compressor.quantize.kmeans import RowsForSums

    kept = RowsForSums()
    a, b = torch.ones(4, 2), torch.full((3, 2), 2.0)
    w = torch.tensor([1.0, 2.0, 3.0])
    assert kept.of(a, None).dtype == torch.float64 and kept.of(a, None) is kept.of(a, None)
    assert torch.equal(kept.of(b, w), torch.tensor([[2.0, 2.0], [4.0, 4.0], [6.0, 6.0]], dtype=torch.float64))
    assert torch.equal(kept.of(b, None), b.double())
