"""Conformance: PlayCanvas splat-transform 3.7.0 (the reference decoder) reads our SOG to what we encoded."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from sogs_compressor.options import CompressOptions
from sogs_compressor.pipeline import compress_splats
from sogs_compressor.read import read_scene
from sogs_compressor.read.sog import read_sog
from sogs_compressor.sample import generate_scene
from sogs_compressor.sog.quats import normalize_quaternions

pytestmark = pytest.mark.peer


def decode_with_peer(command, source, target):
    proc = subprocess.run([*command, "-q", "-w", str(source), str(target)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"splat-transform refused {source}: {proc.stdout}\n{proc.stderr}"
    return read_scene(target).splats


def assert_same_splats(ours, theirs):
    assert theirs.count == ours.count
    assert theirs.sh_degree == ours.sh_degree
    assert np.allclose(theirs.positions, ours.positions, rtol=1e-5, atol=1e-6)
    assert np.allclose(theirs.log_scales, ours.log_scales, rtol=1e-6, atol=1e-6)
    assert np.allclose(theirs.f_dc, ours.f_dc, rtol=1e-6, atol=1e-6)
    assert np.allclose(theirs.f_rest, ours.f_rest, rtol=1e-6, atol=1e-6)
    assert np.allclose(theirs.opacity_logits, ours.opacity_logits, rtol=1e-4, atol=1e-4)
    dots = np.abs(np.sum(normalize_quaternions(theirs.rotations) * normalize_quaternions(ours.rotations), axis=1))
    assert dots.min() > 1 - 1e-6


@pytest.mark.parametrize("count, degree", [(1, 0), (3, 1), (1234, 3), (5000, 2)])
def test_peer_decodes_bundle_and_meta_to_our_values(splat_transform, tmp_path, count, degree):
    splats = generate_scene(count, sh_degree=degree, seed=count)
    result = compress_splats(splats, tmp_path / "out", "scene",
                             CompressOptions(layout="both", device="cpu", preset="fast", palette_size=512))
    ours = read_sog(tmp_path / "out" / "scene.sog").splats
    from_bundle = decode_with_peer(splat_transform, tmp_path / "out" / "scene.sog", tmp_path / "bundle.ply")
    from_meta = decode_with_peer(splat_transform, tmp_path / "out" / "meta.json", tmp_path / "meta.ply")
    assert_same_splats(ours, from_bundle)
    assert_same_splats(ours, from_meta)
    # and both are within the expected quantization error of the input
    assert result.errors["position_rel_max"] < 1e-3
    assert result.errors["rotation_deg_p99"] < 1.0


def test_peer_reads_model_tag(splat_transform, tmp_path):
    splats = generate_scene(200, sh_degree=0, seed=3)
    splats.model = "antialiased"
    compress_splats(splats, tmp_path, "scene", CompressOptions(layout="bundle", device="cpu", preset="fast"))
    proc = subprocess.run([*splat_transform, str(tmp_path / "scene.sog"), "--info", "json", "null"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "antialiased" in proc.stdout
