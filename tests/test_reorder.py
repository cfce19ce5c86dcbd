"""order.reorder: in-place reordering on the host and on CUDA gives the rows ``take`` gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sogs_compressor.order.reorder import reorder_in_place
from sogs_compressor.sample import generate_scene
from sogs_compressor.splats import COLUMNS

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_reorder_in_place_matches_take(device):
    splats = generate_scene(3000, sh_degree=3, seed=4)
    permutation = np.random.default_rng(2).permutation(splats.count)
    expected = splats.take(permutation)
    splats.rotations.flags.writeable = False  # read-only columns are replaced, not written
    buffer = splats.f_rest
    same = reorder_in_place(splats, permutation, torch.device(device))
    assert same is splats
    for name in COLUMNS:
        assert np.array_equal(getattr(splats, name), getattr(expected, name)), name
    if device == "cuda":
        assert splats.f_rest is buffer  # written back into its own host buffer


def test_reorder_refuses_a_wrong_length_permutation():
    splats = generate_scene(10, sh_degree=0, seed=1)
    with pytest.raises(ValueError, match="permutation of 10"):
        reorder_in_place(splats, np.arange(9), torch.device("cpu"))
