"""The torch quantize stage (the ``*_on_device`` twins in sog/) gives the numpy reference's bytes, bit for bit.

Runs torch on the CPU: its log1p/exp differ from numpy's in the last bit for a few percent of values (as CUDA's
do), so the guard bands are exercised here too; each guard test also shows that without the guard the bytes
would differ, so it cannot pass by accident.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sogs_compressor import compute_policy as compute
from sogs_compressor.quantize import codebook_rd as rd
from sogs_compressor.quantize.codebook import nearest_codebook_index, quantize_1d
from sogs_compressor.sample import generate_scene
from sogs_compressor.sog import codebook as codec_codebook
from sogs_compressor.sog import colour, encode, means, quats

CPU = torch.device("cpu")


def assert_means_equal(positions: np.ndarray) -> None:
    expected = means.encode_means(positions)
    got = means.encode_means_on_device(positions, CPU)
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[0].dtype == np.uint8 and got[1].shape == positions.shape
    assert repr(got[2:]) == repr(expected[2:])  # the meta.json floats, to the last digit


def near_half_points(values_of_r, top: int, count: int, seed: int) -> np.ndarray:
    """float64 inputs whose reference value r lies within a few ulps of a half-point k + 0.5, k < top."""
    rng = np.random.default_rng(seed)
    base = values_of_r(rng.integers(0, top, count) + 0.5)
    steps = rng.integers(-4, 5, count).astype(np.float64)
    return base + steps * np.spacing(base)


# --- whole scenes ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count, seed", [(1, 0), (17, 1), (20_000, 2), (60_000, 3)])
def test_generated_scene_matches_numpy(count, seed):
    s = generate_scene(count, sh_degree=0, seed=seed)
    assert_means_equal(s.positions)
    assert np.array_equal(quats.encode_quats_on_device(s.rotations, CPU), quats.encode_quats(s.rotations))
    assert np.array_equal(colour.encode_opacity_on_device(s.opacity_logits, CPU), colour.encode_opacity(s.opacity_logits))
    for bits in (8, 14, 15, 16):
        kept = rd.position_bits(s.opacity_logits, bits)
        assert np.array_equal(means.position_bits_on_device(s.opacity_logits, bits, CPU), kept)
        low, high, _, _ = means.encode_means(s.positions)
        for got, want in zip(means.coarsen_grid_on_device(low, high, kept, CPU), rd.coarsen_grid(low, high, kept), strict=True):
            assert np.array_equal(got, want)
    for values in (s.log_scales, s.f_dc):
        codebook, _ = rd.quantize_1d_rd(values, 2.0)
        assert np.array_equal(codec_codebook.nearest_codebook_index_on_device(values, codebook, CPU),
                              nearest_codebook_index(values, codebook))


@pytest.mark.parametrize("rate_weight, position_bits, sh_degree", [(0.0, 16, 0), (2.0, 15, 0), (4.0, 14, 0),
                                                                    (2.0, 15, 2)])
def test_encode_sog_bytes_identical(monkeypatch, rate_weight, position_bits, sh_degree):
    """The whole quantize stage through encode_sog: same textures and meta.json with the torch path on
    (with SH: the palette's codebook built from every centroid value, its labels on the device)."""
    splats = generate_scene(6000, sh_degree=sh_degree, seed=7)
    monkeypatch.setattr(codec_codebook, "CODEBOOK_SAMPLE", 4000)  # 18K pooled values: the sampled codebook + labelling path
    kwargs = dict(palette_size=500 if sh_degree else 0, iterations=1, seed=3, device=CPU, rate_weight=rate_weight,
                  position_bits=position_bits)
    reference = encode.encode_sog(splats, **kwargs)
    monkeypatch.setattr(compute, "QUANTIZE_ON_DEVICE", frozenset({"cpu", "cuda"}))
    assert compute.quantize_device(CPU) == CPU
    on_device = encode.encode_sog(splats, **kwargs)
    assert on_device.meta == reference.meta
    assert repr(on_device.meta) == repr(reference.meta)
    assert on_device.images.keys() == reference.images.keys()
    for name, image in reference.images.items():
        assert np.array_equal(on_device.images[name], image), name


def test_cpu_keeps_the_numpy_path():
    assert compute.quantize_device(CPU) is None
    assert compute.quantize_device(torch.device("cuda", 0)) == torch.device("cuda", 0)


# --- positions ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("positions", [
    np.zeros((5, 3), np.float32),
    np.array([[0.0, -0.0, 1.0], [-0.0, 0.0, 1.0], [0.0, 0.0, -1.0]], np.float32),
    np.array([[3e38, -3e38, 1e-38], [-3e38, 3e38, -1e-45], [1.0, 2.0, 0.0]], np.float32),
    np.array([[-5.0, -7.0, -1e-3], [-2.0, -7.0, -4e-3]], np.float32),
    np.array([[1.5, -2.0, 0.0]], np.float32),
    np.array([[1000.0, 1000.0, 1000.0]] * 3, np.float32) + np.float32(6.1035156e-05) * np.arange(3)[:, None],
], ids=["zeros", "signed-zeros", "huge-and-tiny", "negative", "single", "one-ulp-span"])
def test_means_awkward_positions(positions):
    assert_means_equal(positions)


def test_means_random_magnitudes():
    rng = np.random.default_rng(11)
    positions = (rng.standard_normal((50_000, 3)) * np.exp(rng.uniform(-30, 30, (50_000, 3)))).astype(np.float32)
    assert_means_equal(positions)


def _means_near_half(seed: int) -> np.ndarray:
    """float64 positions on [0, 1] per axis whose 16-bit grid value is within a few ulps of k + 0.5."""
    ln2 = np.log1p(1.0)
    inner = near_half_points(lambda r: np.expm1(r / 65535.0 * ln2), 65535, 3 * 4000, seed).reshape(-1, 3)
    return np.concatenate([np.zeros((1, 3)), np.ones((1, 3)), inner])


def off_by_one_ulp(monkeypatch, module, name: str, direction: float) -> None:
    """Make ``module.<name>`` one ulp off, as another device's log1p / exp may be."""
    exact = getattr(module, name)
    monkeypatch.setattr(module, name, lambda x: torch.nextafter(exact(x), torch.tensor(direction, dtype=x.dtype)))


@pytest.mark.parametrize("direction", [np.inf, -np.inf])
def test_means_guard_decides_half_points_like_numpy(monkeypatch, direction):
    positions = _means_near_half(5)
    assert_means_equal(positions)
    off_by_one_ulp(monkeypatch, means, "log_transform_on_device", direction)
    assert_means_equal(positions)
    monkeypatch.setattr(means, "EPS", -1.0)  # no guard band: the device's log1p decides the doubtful ones
    assert not np.array_equal(means.encode_means_on_device(positions, CPU)[0], means.encode_means(positions)[0])


# --- rotations ------------------------------------------------------------------------------------------------

def test_quats_awkward_rotations():
    q = np.array([
        [0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, -1], [-1, 0, 0, 0],      # zero, identity (127.5 ties), negative
        [1, 1, 0, 0], [-1, 1, -1, 1], [0.5, -0.5, 0.5, -0.5], [0, 2, -2, 0],  # ties between components
        [3e38, 3e38, -3e38, 1], [1e-38, 0, -1e-38, 1e-45], [1e-45, 0, 0, 0],  # huge, tiny, subnormal
        [0.3, -0.9, 0.3, 0.1], [2, -1, 2, -1],
    ], np.float32)
    assert np.array_equal(quats.encode_quats_on_device(q, CPU), quats.encode_quats(q))


def test_quats_random_and_on_byte_boundaries():
    rng = np.random.default_rng(12)
    q = (rng.standard_normal((40_000, 4)) * rng.uniform(1e-3, 1e3, (40_000, 1))).astype(np.float32)
    # components on the 8-bit grid: 255 * (sqrt2 * c * 0.5 + 0.5) lands on or next to k + 0.5
    grid = ((rng.integers(0, 255, (2000, 3)) + 0.5) / 255.0 - 0.5) / quats.SQRT2
    w = np.sqrt(np.maximum(0.0, 1.0 - np.sum(grid * grid, axis=1)))[:, None] + 0.8
    q = np.concatenate([q, np.concatenate([w, grid], axis=1).astype(np.float32)])
    assert np.array_equal(quats.encode_quats_on_device(q, CPU), quats.encode_quats(q))


# --- opacity --------------------------------------------------------------------------------------------------

def test_opacity_awkward_logits():
    x = np.array([0.0, -0.0, np.inf, -np.inf, 88.0, -88.0, 3e38, -3e38, 1e-45, -1e-45, 5.5, -5.5], np.float32)
    assert np.array_equal(colour.encode_opacity_on_device(x, CPU), colour.encode_opacity(x))


@pytest.mark.parametrize("direction", [np.inf, -np.inf])
def test_opacity_guard_decides_half_points_like_numpy(monkeypatch, direction):
    logits = near_half_points(lambda r: np.log(r / (255.0 - r)), 255, 20_000, 6)
    assert np.array_equal(colour.encode_opacity_on_device(logits, CPU), colour.encode_opacity(logits))
    off_by_one_ulp(monkeypatch, colour, "sigmoid_on_device", direction)
    assert np.array_equal(colour.encode_opacity_on_device(logits, CPU), colour.encode_opacity(logits))
    monkeypatch.setattr(colour, "OPACITY_GUARD", -1.0)
    assert not np.array_equal(colour.encode_opacity_on_device(logits, CPU), colour.encode_opacity(logits))


def test_position_bits_guard_decides_thresholds_like_numpy(monkeypatch):
    """Opacities within ulps of the faint-splat thresholds: the guard gives numpy's bits even with the device's
    exp one ulp off, and without the guard they differ."""
    rng = np.random.default_rng(8)
    base = np.repeat(np.log(np.array(rd.TRANSLUCENT_ALPHA) / (1.0 - np.array(rd.TRANSLUCENT_ALPHA))), 3000)
    logits = base + rng.integers(-6, 7, base.size) * np.spacing(base)
    for bits in (9, 15):
        assert np.array_equal(means.position_bits_on_device(logits, bits, CPU), rd.position_bits(logits, bits))
    off_by_one_ulp(monkeypatch, means, "logistic_on_device", 1.0)
    assert np.array_equal(means.position_bits_on_device(logits, 15, CPU), rd.position_bits(logits, 15))
    monkeypatch.setattr(means, "THRESHOLD_GUARD", -1.0)
    assert not np.array_equal(means.position_bits_on_device(logits, 15, CPU), rd.position_bits(logits, 15))


@pytest.mark.parametrize("device", [CPU] + ([torch.device("cuda")] if torch.cuda.is_available() else []))
def test_size_position_bits_match_numpy(device):
    """Scenes of every kind, and a scene on one point (a zero cell: any rounding allowed)."""
    from sogs_compressor.sample import wide_range_scene

    for s in (generate_scene(50_000, sh_degree=0, seed=4), wide_range_scene(20_000, seed=2)):
        _, _, mins, maxs = means.encode_means(s.positions)
        for logits in (None, s.opacity_logits):
            want = rd.size_position_bits(s.positions, s.log_scales, mins, maxs, opacity_logits=logits)
            got = means.size_position_bits_on_device(s.positions, s.log_scales, mins, maxs, device, opacity_logits=logits)
            assert np.array_equal(got, want)
            assert len(np.unique(want)) > 3  # the scenes span several allowances: the comparison means something
    point = np.zeros((5, 3), np.float32)
    scales = np.full((5, 3), -2.0, np.float32)
    assert np.array_equal(means.size_position_bits_on_device(point, scales, [0.0] * 3, [0.0] * 3, device),
                          rd.size_position_bits(point, scales, [0.0] * 3, [0.0] * 3))


def test_size_position_bits_guard_decides_integers_like_numpy(monkeypatch):
    """Splats whose allowance lies within ulps of an integer: the guard gives numpy's bits even with the device's
    log2 one ulp off, and without the guard they differ."""
    rng = np.random.default_rng(11)
    count = 6000
    positions = rng.uniform(-3.0, 3.0, (count, 3))
    mins, maxs = [-2.0, -2.0, -2.0], [2.0, 2.0, 2.0]
    cell = 4.0 / 65535.0
    world = ((np.abs(positions) + 1.0) * cell).max(axis=1)
    # middle log-scale that puts 1 + log2(shift * size / cell) on an integer k, then a few ulps either side
    target = rng.integers(1, 12, count).astype(np.float64)
    middle = ((target - 1.0) + np.log2(world) - np.log2(rd.POSITION_SHIFT)) * np.log(2.0)
    middle = middle + rng.integers(-3, 4, count) * np.spacing(middle)
    log_scales = np.stack([middle - 1.0, middle, middle + 1.0], axis=1)
    want = rd.size_position_bits(positions, log_scales, mins, maxs)
    assert np.array_equal(means.size_position_bits_on_device(positions, log_scales, mins, maxs, CPU), want)
    for direction in (np.inf, -np.inf):
        with monkeypatch.context() as patch:
            off_by_one_ulp(patch, means, "log2_on_device", direction)
            assert np.array_equal(means.size_position_bits_on_device(positions, log_scales, mins, maxs, CPU), want)
            patch.setattr(means, "SIZE_GUARD", -1.0)
            assert not np.array_equal(means.size_position_bits_on_device(positions, log_scales, mins, maxs, CPU), want)


def test_position_bits_rejects_what_the_reference_rejects():
    with pytest.raises(ValueError, match="8..16"):
        means.position_bits_on_device(np.zeros(3, np.float32), 7, CPU)


def test_coarsen_every_grid_value_and_bit_count():
    q = np.arange(65536, dtype=np.int64)
    low = np.repeat((q & 0xFF).astype(np.uint8)[:, None], 3, axis=1)
    high = np.repeat((q >> 8).astype(np.uint8)[:, None], 3, axis=1)
    for bits in range(8, 17):
        kept = np.full(q.size, bits, np.int64)
        for got, want in zip(means.coarsen_grid_on_device(low, high, kept, CPU), rd.coarsen_grid(low, high, kept), strict=True):
            assert np.array_equal(got, want)


# --- codebook labels ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nearest_index_ties_infinities_and_nan(dtype):
    rng = np.random.default_rng(9)
    codebook, _ = quantize_1d(rng.standard_normal(5000).astype(np.float32) * 3)
    padded = np.concatenate([codebook[:200], np.full(56, codebook[199])])  # repeated last entries
    for book in (codebook, padded, codebook[:1]):
        mids = (book[:-1].astype(np.float64) + book[1:]) * 0.5
        values = np.concatenate([
            mids, np.nextafter(mids, -np.inf), np.nextafter(mids, np.inf), book,
            [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e30, -1e30], rng.standard_normal(3000) * 4,
        ]).astype(dtype)
        got = codec_codebook.nearest_codebook_index_on_device(values.reshape(-1, 2) if values.size % 2 == 0 else values, book, CPU)
        want = nearest_codebook_index(values.reshape(-1, 2) if values.size % 2 == 0 else values, book)
        assert got.dtype == np.uint8 and got.shape == want.shape
        assert np.array_equal(got, want)


def test_nearest_index_rejects_bad_codebooks():
    with pytest.raises(ValueError, match="1..256"):
        codec_codebook.nearest_codebook_index_on_device(np.zeros(3, np.float32), np.zeros(257), CPU)


# --- the codebook builds' passes over all values (quantize/value_ops.py) -------------------------------------

def ops_devices() -> list[torch.device]:
    return [CPU] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def awkward_values(seed: int) -> np.ndarray:
    """float32 values with long runs of ties, both signed zeros interleaved, and a heavy tail."""
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(-3.0, 1.5, 50_000), rng.standard_cauchy(2_000),
                             rng.integers(-3, 4, 20_000) * 0.5, np.zeros(500), -np.zeros(500)]).astype(np.float32)
    return values[rng.permutation(values.size)]


@pytest.mark.parametrize("device", ops_devices())
def test_device_ops_equal_host_ops(device):
    from sogs_compressor.quantize.value_ops import HOST

    ops = codec_codebook.DeviceOps(device)
    values = awkward_values(0)
    order = ops.stable_argsort(values)
    assert np.array_equal(order, HOST.stable_argsort(values))
    assert np.signbit(values[order][values[order] == 0]).any()  # signed zeros kept their input order among ties
    codebook, labels = rd.quantize_1d_rd(values, 2.0)
    assert np.array_equal(ops.nearest(values, codebook), HOST.nearest(values, codebook))
    shifted = labels.copy()
    shifted[::97] = np.minimum(shifted[::97].astype(np.int64) + 3, 255).astype(np.uint8)
    for below, above in ((0.05, 0.05), (1.0, 0.25), (0.0, 0.0)):
        want = HOST.violations(values, codebook, shifted, below, above)
        assert want.size > 0
        assert np.array_equal(ops.violations(values, codebook, shifted, below, above), want)


@pytest.mark.parametrize("device", ops_devices())
def test_codebooks_built_with_device_ops_are_the_hosts(device):
    """The rate-aware, sampled and error-bounded codebooks: the same codebook and labels on either side."""
    ops = codec_codebook.DeviceOps(device)
    values = awkward_values(1)[:72_999].reshape(-1, 3)
    weights = np.random.default_rng(2).gamma(0.5, 1.0, values.shape[0])
    for rate_weight, sample_size in ((2.0, None), (2.0, 20_000), (0.0, 20_000), (16.0, 5_000)):
        for window in (None, (0.3, 0.1)):
            args = dict(sample_size=sample_size, weights=lambda rows: weights[rows], window=window)
            host_codebook, host_labels = codec_codebook.codebook_for(values, rate_weight, 0, **args)
            codebook, labels = codec_codebook.codebook_for(values, rate_weight, 0, ops=ops, **args)
            assert np.array_equal(codebook, host_codebook) and np.array_equal(labels, host_labels)
