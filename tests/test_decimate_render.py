"""A decimated scene must still look like the scene: rendered against the original, closer than a random subset
of the same size (the shared real guitar when present, else the built-in generated sample)."""

from __future__ import annotations

import numpy as np
import torch

from sogs_compressor.lod.decimate import decimate
from sogs_compressor.read import read_scene
from sogs_compressor.render.quality import default_cameras, quality_check, render_views
from sogs_compressor.sample import generate_scene
from tests.conftest import SHARED_REAL

GUITAR = SHARED_REAL / "guitar.compressed.ply"
VIEWS, SIZE = 2, 160
"""Two small orbit views: 6 renders of up to 90K splats stay affordable on a 2-core CI machine."""

# Measured on these cameras (2 orbit views, 160 px, CPU), content PSNR mean, at 50%:
#   guitar (90,854 splats): ours 33.13 dB, a random half 27.27 dB;
#   generated sample (6,000 splats, SH 2): ours 26.97 dB, a random half 16.87 dB.
# (The Morton-window partners before the nearest neighbours measured 31.99 and 24.39 dB: both under these floors.)
# Each floor sits ~1 dB under our measurement (the renderer is deterministic on one machine; the margin covers
# other CPUs' float rounding and small changes of the merge), and each margin over the random half is about half of
# the gap measured, so a decimation that merged blindly (poor partners, wrong moments) fails.
FLOORS = {"guitar": (32.1, 2.9), "sample": (26.0, 5.0)}
"""Scene -> (lowest content PSNR accepted, least dB above the random half)."""


def scene_under_test():
    if GUITAR.is_file():
        return "guitar", read_scene(GUITAR).splats
    return "sample", generate_scene(6000, sh_degree=2, seed=4)


def test_half_the_splats_render_close_to_the_original():
    name, splats = scene_under_test()
    device = torch.device("cpu")
    cameras = default_cameras(splats, "fast", views=VIEWS, size=SIZE, interior=0)  # the orbit views measured
    reference = render_views(splats, cameras, device)

    def content_psnr(candidate) -> float:
        report = quality_check(splats, candidate, "fast", device, cameras=cameras, reference=reference)
        return report["summary"]["psnr_content"]["mean"]

    half = splats.count // 2
    ours = content_psnr(decimate(splats, half, seed=0))
    rng = np.random.default_rng(0)
    random_half = content_psnr(splats.take(np.sort(rng.choice(splats.count, half, replace=False))))
    print(f"{name}: decimated {ours:.2f} dB, random half {random_half:.2f} dB")
    floor, margin = FLOORS[name]
    assert ours >= floor, f"{name}: {ours:.2f} dB < {floor} dB"
    assert ours >= random_half + margin, f"{name}: {ours:.2f} dB vs a random half's {random_half:.2f} dB"
