"""The shared real scenes, read directly from their compressed forms (skips where ../shared is absent)."""

from __future__ import annotations

import pytest

from sogs_compressor.options import CompressOptions
from sogs_compressor.pipeline import compress_file

pytestmark = pytest.mark.real


@pytest.mark.parametrize("relative, count, degree", [
    ("guitar.compressed.ply", 90_854, 0),
    ("flowers_3_0/meta.json", 26_895, 2),
])
def test_real_scene_compresses_with_small_errors(real_data, tmp_path, relative, count, degree):
    result = compress_file(real_data / relative, tmp_path, CompressOptions(device="cpu", preset="fast"))
    assert result.counts["input"] == result.counts["output"] == count
    assert result.sh_degree_out == degree
    e = result.errors
    assert e["position_rel_median"] < 2e-5 and e["position_rel_max"] < 1e-3
    assert e["rotation_deg_median"] < 0.5
    assert e["opacity_mae"] <= 0.5 / 255 + 1e-6
    # both scenes are already quantized (README of the data): codebooks come out almost exact; the rate-aware
    # scale codebook spends its entries where splats are large (render weights), a little RMSE on the small ones
    assert e["f_dc_rmse"] < 0.02 and e["log_scale_rmse"] < 0.025
    if degree:
        assert e["f_rest_rmse"] < 0.05
    if result.input_format != "sog":  # re-encoding a SOG at the fast preset may come out a little larger
        assert result.output_bytes < result.input_bytes
