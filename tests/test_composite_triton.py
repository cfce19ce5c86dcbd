"""The fused Triton compositor against the PyTorch one: through Triton's interpreter on CPU (CI), compiled on
CUDA where a GPU is present."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import torch
from triton_interpreter import run_interpreted

from sogs_compressor.render.quality import default_cameras
from sogs_compressor.render.rasterize import prepare, render
from sogs_compressor.sample import generate_scene

REPO = Path(__file__).resolve().parents[1]

INTERPRETER_SCRIPT = textwrap.dedent(
    """
    import json, torch
    from sogs_compressor.render import rasterize, segments
    from sogs_compressor.render.quality import default_cameras
    from sogs_compressor.render.rasterize import prepare, render
    from sogs_compressor.sample import generate_scene
    out = {}
    torch_tile = rasterize.torch_tile
    for n, degree, size, segment in ((300, 1, 40, 4096), (1500, 3, 32, 4096), (1500, 2, 32, 37)):
        segments.SEGMENT = segment  # 37: long tiles cut into segments blended side by side (both compositors)
        rasterize.segment_length = lambda device, segment=segment: segment
        scene = generate_scene(n, sh_degree=degree, seed=n)
        g = prepare(scene, torch.device("cpu"))
        for i, cam in enumerate(default_cameras(scene, "fast", size=size)[:2]):
            a = render(g, cam, (0.1, 0.2, 0.3), compositor="torch")  # its own (finer) tiles on a CPU
            b = render(g, cam, (0.1, 0.2, 0.3), compositor="triton")
            rasterize.torch_tile = lambda device: rasterize.TILE
            c = render(g, cam, (0.1, 0.2, 0.3), compositor="torch")  # the kernel's 16-pixel tiles
            rasterize.torch_tile = torch_tile
            out[f"{n}-{segment}-{i}"] = [max(float((x.image - b.image).abs().max()) for x in (a, c)),
                                         max(float((x.alpha - b.alpha).abs().max()) for x in (a, c)),
                                         c.pairs == b.pairs]
    print(json.dumps(out))
    """
)


def test_fused_compositor_matches_torch_in_the_triton_interpreter() -> None:
    # Measured here: 3.7.1 (the version torch 2.13.0 requires) and 3.9.0 pass this test; older ones not checked.
    result = run_interpreted(INTERPRETER_SCRIPT, (3, 7), "Triton's interpreter before 3.7 is not used here; the "
                             "CUDA test checks the compiled kernel")
    assert len(result) == 6
    for name, (image_diff, alpha_diff, same_pairs) in result.items():
        assert image_diff < 1e-5 and alpha_diff < 1e-5 and same_pairs, name


def test_unknown_or_unavailable_compositor_is_refused() -> None:
    scene = generate_scene(50, sh_degree=0, seed=1)
    g = prepare(scene, torch.device("cpu"))
    cam = default_cameras(scene, "fast", size=32)[0]
    with pytest.raises(ValueError, match="compositor"):
        render(g, cam, compositor="opengl")
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        with pytest.raises(ValueError, match="Triton compositor"):
            render(g, cam, compositor="triton")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("n", "degree", "size", "segment"),
                         [(20_000, 3, 256, None), (200_000, 2, 512, None), (5, 0, 64, None), (200_000, 2, 128, 97)])
def test_fused_compositor_matches_torch_on_cuda(n, degree, size, segment, monkeypatch) -> None:
    if segment:
        monkeypatch.setattr("sogs_compressor.render.segments.SEGMENT", segment)
    scene = generate_scene(n, sh_degree=degree, seed=3)
    g = prepare(scene, torch.device("cuda"))
    for cam in default_cameras(scene, "fast", size=size):
        a = render(g, cam, (0.0, 0.0, 0.0), compositor="torch", allow_empty=True)
        b = render(g, cam, (0.0, 0.0, 0.0), allow_empty=True)  # auto: the Triton kernel on CUDA
        for x, y in ((a.image, b.image), (a.alpha, b.alpha)):
            diff = (x - y).abs()
            # CUDA's fast exp and a different order of float operations can flip a pixel's 1/255 alpha cut or
            # its 1e-4 transmittance stop: isolated pixels move by up to one faint splat's contribution (H200:
            # at most 1 pixel in 65K, by <= 1.7e-3; the mean difference ~5e-8)
            assert float(diff.max()) < 1e-2
            assert float(diff.mean()) < 1e-5
            assert float((diff > 1e-4).float().mean()) < 1e-3
