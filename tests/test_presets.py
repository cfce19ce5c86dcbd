"""Presets fill unset options; the encoder settings they imply are real trade-offs (measured here)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from sogs_compressor import presets
from sogs_compressor.errors import SogsError
from sogs_compressor.options import CompressOptions
from sogs_compressor.order.morton import morton_order
from sogs_compressor.quantize.kmeans import palette_size_rule
from sogs_compressor.sample import generate_scene
from sogs_compressor.sog.encode import encode_sog


@pytest.mark.parametrize("name", ["fast", "balanced", "max"])
def test_resolve_fills_every_preset_field(name):
    options = presets.resolve(CompressOptions(preset=name))
    preset = presets.PRESETS[name]
    assert options.webp_method == preset.webp_method and options.webp_quality == preset.webp_quality
    assert options.iterations == preset.iterations and options.order == preset.order
    assert options.rate_weight == preset.rate_weight and options.position_bits == preset.position_bits


def test_explicit_settings_win_over_the_preset():
    options = presets.resolve(CompressOptions(preset="max", webp_method=1, rate_weight=0.0, position_bits=16))
    assert (options.webp_method, options.rate_weight, options.position_bits) == (1, 0.0, 16)


def test_effort_grows_from_fast_to_max():
    fast, balanced, best = (presets.PRESETS[n] for n in ("fast", "balanced", "max"))
    assert fast.webp_method <= balanced.webp_method <= best.webp_method
    assert fast.iterations <= balanced.iterations <= best.iterations


def test_encoder_settings_palette():
    options = presets.resolve(CompressOptions())
    assert presets.encoder_settings(options, 26_895)["palette_size"] == palette_size_rule(26_895)
    auto = presets.resolve(CompressOptions(palette="auto"))
    assert presets.encoder_settings(auto, 80_000)["palette_size"] == 10_048
    explicit = presets.resolve(CompressOptions(palette="auto", palette_size=300))
    assert presets.encoder_settings(explicit, 80_000)["palette_size"] == 300


@pytest.mark.parametrize("field,value", [("palette", "big"), ("palette_order", "random"), ("rate_weight", -1.0),
                                         ("rate_weight", 100.0), ("palette_rate_weight", -0.5),
                                         ("palette_rate_weight", 65.0), ("position_bits", 7), ("position_bits", 17)])
def test_bad_new_options_are_usage_errors(field, value):
    with pytest.raises(SogsError) as info:
        CompressOptions(**{field: value}).validate()
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def _webp_bytes(image: np.ndarray) -> int:
    buffer = io.BytesIO()
    Image.fromarray(image, "RGBA").save(buffer, format="WEBP", lossless=True, exact=True, method=2, quality=25)
    return len(buffer.getvalue())


def test_balanced_settings_shrink_the_textures_they_touch():
    splats = generate_scene(12_000, sh_degree=0, seed=5)
    splats = splats.take(morton_order(splats.positions, device=torch.device("cpu")))
    settings = presets.encoder_settings(presets.resolve(CompressOptions(preset="balanced")), splats.count)
    common = dict(iterations=1, seed=0, device=torch.device("cpu"))
    exact = encode_sog(splats, **{**settings, "rate_weight": 0.0, "position_bits": 16}, **common)
    traded = encode_sog(splats, **settings, **common)
    for name in ("means_l.webp", "scales.webp", "sh0.webp"):
        assert _webp_bytes(traded.images[name]) < _webp_bytes(exact.images[name]), name
    np.testing.assert_array_equal(traded.images["quats.webp"], exact.images["quats.webp"])


def test_palette_rate_weight_shrinks_the_centroid_texture_of_continuous_sh():
    """The centroid codebook trades its (small) rounding error for bytes; labels and palette stay the same."""
    splats = generate_scene(6_000, sh_degree=2, seed=4)
    splats = splats.take(morton_order(splats.positions, device=torch.device("cpu")))
    common = dict(palette_size=1024, iterations=3, seed=0, device=torch.device("cpu"))
    exact = encode_sog(splats, palette_rate_weight=0.0, **common)
    traded = encode_sog(splats, palette_rate_weight=16.0, **common)
    np.testing.assert_array_equal(traded.images["shN_labels.webp"], exact.images["shN_labels.webp"])
    assert _webp_bytes(traded.images["shN_centroids.webp"]) < 0.9 * _webp_bytes(exact.images["shN_centroids.webp"])
    assert traded.meta["shN"]["count"] == exact.meta["shN"]["count"]


def test_presets_set_a_palette_rate_weight():
    for name in presets.PRESETS:
        settings = presets.encoder_settings(presets.resolve(CompressOptions(preset=name)), 50_000)
        assert settings["palette_rate_weight"] > 0
    off = presets.resolve(CompressOptions(preset="max", palette_rate_weight=0.0))
    assert presets.encoder_settings(off, 50_000)["palette_rate_weight"] == 0.0


def test_webp_effort_per_texture_unless_given_explicitly():
    balanced = presets.webp_effort(CompressOptions())
    preset = presets.PRESETS["balanced"]
    assert balanced("quats.webp") == presets.WEBP_EFFORT["balanced"]["quats.webp"]
    assert balanced("shN_labels.webp") == (preset.webp_method, preset.webp_quality)  # not in the table
    assert balanced("anything-else.webp") == (preset.webp_method, preset.webp_quality)
    explicit = presets.webp_effort(CompressOptions(webp_method=1))
    assert {explicit(name) for name in ("quats.webp", "sh0.webp", "shN_labels.webp")} == {(1, preset.webp_quality)}
    for table in presets.WEBP_EFFORT.values():
        assert all(0 <= m <= 6 and 0 <= q <= 100 for m, q in table.values())
