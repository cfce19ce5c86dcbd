"""End to end through the codec API: encode -> write -> decode, on awkward splat sets (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sogs_compressor.options import CompressOptions
from sogs_compressor.pipeline import compress_splats, output_name
from sogs_compressor.read.sanitize import sanitize
from sogs_compressor.read.sog import read_sog
from sogs_compressor.sog.colour import sigmoid
from sogs_compressor.splats import COEFFS_PER_DEGREE, SplatSet

FAST = dict(layout="bundle", device="cpu", preset="fast", iterations=2, quality_check="off")


@st.composite
def splat_sets(draw):
    n = draw(st.sampled_from([1, 2, 3, 5, 17, 63, 100, 257]))
    degree = draw(st.integers(0, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    k = COEFFS_PER_DEGREE[degree]
    splats = SplatSet(
        positions=(rng.normal(size=(n, 3)) * 3).astype(np.float32),
        log_scales=rng.normal(-4, 1, size=(n, 3)).astype(np.float32),
        rotations=rng.normal(size=(n, 4)).astype(np.float32),
        opacity_logits=rng.normal(0, 3, size=n).astype(np.float32),
        f_dc=rng.normal(size=(n, 3)).astype(np.float32),
        f_rest=(rng.normal(size=(n, 3 * k)) * 0.2).astype(np.float32),
    )
    if draw(st.booleans()):  # constant columns
        splats.log_scales[:, 1] = -3.0
        splats.f_dc[:, 0] = 0.25
    if draw(st.booleans()):  # opacity exactly 0 and 1 after the sigmoid
        splats.opacity_logits[0] = -np.inf
        splats.opacity_logits[-1] = np.inf
    if draw(st.booleans()) and n > 1:
        splats.rotations[0] = 0.0
    bad_rows = 0
    if draw(st.booleans()) and n > 2:
        splats.positions[1, 0] = np.nan
        splats.f_dc[2, 1] = np.inf
        bad_rows = 2
    return splats, bad_rows


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=splat_sets())
def test_round_trip_within_quantization(case, tmp_path_factory):
    splats, bad_rows = case
    clean, report = sanitize(splats, "drop")
    assert sum(report.dropped.values()) == bad_rows
    out = tmp_path_factory.mktemp("rt")
    result = compress_splats(clean, out, "scene", CompressOptions(**FAST))
    decoded = read_sog(out / "scene.sog").splats
    assert decoded.count == clean.count == result.counts["output"]
    assert decoded.sh_degree == clean.sh_degree
    errors = result.errors
    assert errors["position_rel_max"] < 2e-3
    assert errors["rotation_deg_p99"] < 1.5
    assert errors["opacity_mae"] <= 0.5 / 255 + 1e-6
    # the decoded multiset of opacities matches the input (order changes with Morton)
    assert np.allclose(np.sort(sigmoid(decoded.opacity_logits)), np.sort(sigmoid(clean.opacity_logits)),
                       atol=0.5 / 255 + 1e-5)
    if clean.count * 3 <= 256:  # few enough distinct values: codebooks are exact
        assert errors["f_dc_rmse"] < 1e-5 and errors["log_scale_rmse"] < 1e-5


def test_colour_under_zero_alpha_survives(tmp_path):
    """exact=True: a fully transparent splat keeps its colour (lossless WebP would otherwise zero it)."""
    splats = SplatSet.empty_like_columns(4)
    splats.positions[:] = np.arange(12, dtype=np.float32).reshape(4, 3)
    splats.f_dc[:] = [[1.0, -1.0, 0.5], [0.2, 0.3, 0.4], [2.0, 2.0, 2.0], [-1.5, 0.0, 1.5]]
    splats.opacity_logits[:] = -np.inf
    result = compress_splats(splats, tmp_path, "scene", CompressOptions(**FAST))
    assert result.errors["f_dc_rmse"] < 1e-6


def test_same_seed_same_bytes(tmp_path):
    from sogs_compressor.sample import generate_scene

    splats = generate_scene(3000, sh_degree=2, seed=1)
    a = compress_splats(splats, tmp_path / "a", "s", CompressOptions(**FAST, seed=7, palette_size=256))
    b = compress_splats(splats, tmp_path / "b", "s", CompressOptions(**FAST, seed=7, palette_size=256))
    assert (tmp_path / "a" / "s.sog").read_bytes() == (tmp_path / "b" / "s.sog").read_bytes()
    assert a.palette_size == b.palette_size <= 256


@pytest.mark.parametrize("name, expected", [
    ("a/b/scene.ply", "scene"), ("x/scene.compressed.ply", "scene"), ("s.SOG", "s"), ("dir/meta.json", "dir"),
    ("weird", "weird"),
])
def test_output_name(name, expected):
    assert output_name(name) == expected


def test_quality_is_measured_against_the_original_sh_not_the_capped_one(tmp_path):
    from sogs_compressor.sample import generate_scene

    splats = generate_scene(1500, sh_degree=3, seed=4)
    splats.f_rest *= 8.0  # strong view-dependent colour, so dropping it must show
    options = dict(layout="bundle", device="cpu", preset="fast", quality_check="fast")
    full = compress_splats(splats, tmp_path / "full", "s", CompressOptions(**options))
    capped = compress_splats(splats, tmp_path / "capped", "s", CompressOptions(**options, sh_bands=0))
    assert capped.sh_degree_out == 0 and capped.quality["renderer"]["sh_degree"]["original"] == 3
    assert capped.quality["summary"]["psnr"]["mean"] < full.quality["summary"]["psnr"]["mean"] - 3
    assert (tmp_path / "capped" / "s.preview.png").exists()
