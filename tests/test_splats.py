"""The splat set container."""

from __future__ import annotations

import numpy as np
import pytest

from sogs_compressor import splats as splats_module
from sogs_compressor.sample import generate_scene
from sogs_compressor.splats import SplatSet, gather_rows, sh_degree_for_rest_count


def test_reorder_in_place_equals_take():
    splats = generate_scene(500, sh_degree=2, seed=3)
    permutation = np.random.default_rng(0).permutation(500)
    expected = splats.take(permutation)
    splats.positions.flags.writeable = False  # a read-only column is replaced, not written
    same = splats.reorder_in_place(permutation)
    assert same is splats
    for name in ("positions", "log_scales", "rotations", "opacity_logits", "f_dc", "f_rest"):
        assert np.array_equal(getattr(splats, name), getattr(expected, name))


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="f_rest"):
        SplatSet.empty_like_columns(3).__class__(
            positions=np.zeros((3, 3), np.float32), log_scales=np.zeros((3, 3), np.float32),
            rotations=np.zeros((3, 4), np.float32), opacity_logits=np.zeros(3, np.float32),
            f_dc=np.zeros((3, 3), np.float32), f_rest=np.zeros((3, 10), np.float32))
    assert [sh_degree_for_rest_count(n) for n in (0, 9, 24, 45)] == [0, 1, 2, 3]


def test_with_sh_degree_truncates_channel_major():
    splats = generate_scene(10, sh_degree=3, seed=1)
    lower = splats.with_sh_degree(1)
    assert lower.sh_degree == 1
    assert np.array_equal(lower.f_rest.reshape(10, 3, 3), splats.f_rest.reshape(10, 3, 15)[:, :, :3])


def test_threaded_gather_matches_fancy_indexing(monkeypatch):
    monkeypatch.setattr(splats_module, "GATHER_BLOCK_ROWS", 7)
    values = np.arange(300 * 5, dtype=np.float32).reshape(300, 5)
    index = np.random.default_rng(1).integers(-300, 300, size=401)
    for workers in (1, 2, 3):
        assert np.array_equal(gather_rows(values, index, workers=workers), values[index])
    assert np.array_equal(gather_rows(values[:, 0], index, workers=2), values[index, 0])
    with pytest.raises(IndexError):
        gather_rows(values, np.array([0, 300] * 20), workers=2)
    scene = generate_scene(100, sh_degree=1, seed=2)
    mask = np.arange(100) % 3 == 0
    assert np.array_equal(scene.take(mask).f_rest, scene.f_rest[mask])
