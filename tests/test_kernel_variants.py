"""One compile of each Triton kernel serves every scene: the background warm-up compiles each kernel on a tiny
problem, and a kernel specialized on a size argument (Triton specializes integers on divisibility by 16 and on
being 1) would compile again, on the critical path, for a scene whose splat count or bin count is of the other
kind. CUDA only (the interpreter does not compile)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def compiled_variants(kernel) -> int:
    """Compiled specializations of a ``triton.jit`` function in this process, over all devices."""
    caches = getattr(kernel, "device_caches", None)  # Triton >= 3.2: per device, (kernel cache, ...)
    if caches is not None:
        return sum(len(entry[0]) for entry in caches.values())
    return sum(len(cache) for cache in kernel.cache.values())  # older Triton: per device, the kernel cache


def test_the_k_means_kernel_compiles_once_for_every_splat_count() -> None:
    from sogs_compressor.quantize import assign_triton

    device = torch.device("cuda")
    generator = torch.Generator().manual_seed(3)
    centroids = torch.randn(40, 24, generator=generator).to(device)
    assign_triton.triton_nearest_centroid(torch.randn(64, 24, generator=generator).to(device), centroids)
    before = compiled_variants(assign_triton._nearest_centroid_kernel)
    for n in (61, 1, 1_000_003, 4096):
        points = torch.randn(n, 24, generator=generator).to(device)
        labels = assign_triton.triton_nearest_centroid(points, centroids)
        exact = torch.cdist(points.double(), centroids.double()).argmin(dim=1)
        assert float((labels != exact).float().mean()) < 0.02
    assert compiled_variants(assign_triton._nearest_centroid_kernel) == before


def test_the_codebook_kernel_compiles_once_for_every_bin_count() -> None:
    from sogs_compressor.quantize import dp_triton
    from sogs_compressor.quantize.value_ops import dp_group_counts

    device = torch.device("cuda")
    dp_triton.warm_up(device)
    dp_triton.group_counts(_costs(4), np.zeros(2), device)  # the warm-up's problem, in case it ran before
    before = compiled_variants(dp_triton._group_counts_kernel)
    penalties = np.linspace(0.0, 5.0, 7)
    for bounds in (1025, 1026, 97, 2):
        costs = _costs(bounds)
        assert np.array_equal(dp_triton.group_counts(costs, penalties, device), dp_group_counts(costs, penalties))
    assert compiled_variants(dp_triton._group_counts_kernel) == before


def _costs(bounds: int) -> np.ndarray:
    """An upper-triangular cost matrix of ``bounds`` bin bounds (inf on and below the diagonal)."""
    rng = np.random.default_rng(bounds)
    i, j = np.meshgrid(np.arange(bounds), np.arange(bounds), indexing="ij")
    costs = np.where(j > i, (j - i) ** 1.5 + rng.random((bounds, bounds)), np.inf)
    return costs


def test_the_compositor_compiles_once_for_every_picture_width() -> None:
    from sogs_compressor.render import composite_triton

    device = torch.device("cuda")
    composite_triton.warm_up(device)
    before = (compiled_variants(composite_triton._composite_kernel),
              compiled_variants(composite_triton._transmittance_kernel))
    table = torch.zeros(3, composite_triton.TABLE_WIDTH, device=device)
    table[:, 2] = table[:, 4] = 1.0
    table[2, 5] = float("-inf")
    one = torch.ones(1, dtype=torch.int64, device=device)
    for grid_x in (7, 1, 32):  # 112-, 16- and 512-pixel-wide pictures
        out = composite_triton.composite_tiles_triton(table, one * 3, one * 0, one * 2, torch.arange(2, device=device),
                                                      grid_x, 0.99, 1.0 / 255.0, 1e-4, segment=1)
        assert out.shape == (1, composite_triton.TILE * composite_triton.TILE, 4)
    assert (compiled_variants(composite_triton._composite_kernel),
            compiled_variants(composite_triton._transmittance_kernel)) == before
