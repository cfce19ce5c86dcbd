"""Front-to-back compositing of depth-sorted splats in one Triton kernel (CUDA), for ``rasterize.render``.

The PyTorch compositor blends 64 depth layers of every busy tile per step; where splats are large or faint
(transmittance never reaches the stop) a tile can hold 100K layers, and the thousands of small steps, each
with a host sync, dominated the quality check at 1M splats (3-4 s for 4 views on an H200). Here one program
owns one 16x16 tile: its 256 pixels live in registers and it walks the tile's sorted splat list once, stopping
when every pixel has stopped. Same arithmetic as ``rasterize._blend_layers`` (alpha = min(0.99, exp(power + log
opacity)), alphas under 1/255 skipped, a splat that would bring the transmittance under 1e-4 is not blended);
results agree with the PyTorch path to float32 rounding.

Imports without Triton; ``TRITON_INTERPRET=1`` (set before import) runs it on CPU tensors for the tests.
"""

from __future__ import annotations

import torch

try:  # Triton is optional: absent on CPU-only installs.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

from sogs_compressor.quantize.assign_triton import interpreting, triton_available

TILE = 16
TABLE_WIDTH = 9  # [u, v, conic a, b, c, log opacity, r, g, b] (rasterize._splat_table)


def composite_available(device: torch.device) -> bool:
    """True where the kernel runs: a CUDA device Triton supports, or any device under the interpreter."""
    if triton is None:
        return False
    return interpreting() or triton_available(device)


if triton is not None:

    @triton.jit
    def _composite_kernel(
        table_ptr, splat_ptr, tiles_ptr, starts_ptr, counts_ptr, out_ptr, grid_x,
        alpha_cap, alpha_min, t_min,
        TILE_PX: tl.constexpr, WIDTH: tl.constexpr,
    ):
        program = tl.program_id(0)
        tile = tl.load(tiles_ptr + program)
        start = tl.load(starts_ptr + program)
        count = tl.load(counts_ptr + program)
        pixel = tl.arange(0, TILE_PX * TILE_PX)
        px = (pixel % TILE_PX).to(tl.float32) + 0.5 + ((tile % grid_x) * TILE_PX).to(tl.float32)
        py = (pixel // TILE_PX).to(tl.float32) + 0.5 + ((tile // grid_x) * TILE_PX).to(tl.float32)
        t_run = tl.full([TILE_PX * TILE_PX], 1.0, tl.float32)
        acc_r = tl.zeros([TILE_PX * TILE_PX], tl.float32)
        acc_g = tl.zeros([TILE_PX * TILE_PX], tl.float32)
        acc_b = tl.zeros([TILE_PX * TILE_PX], tl.float32)
        acc_w = tl.zeros([TILE_PX * TILE_PX], tl.float32)
        i = 0
        seeing = count > 0
        while seeing:
            row = table_ptr + tl.load(splat_ptr + start + i).to(tl.int64) * WIDTH
            dx = px - tl.load(row + 0)
            dy = py - tl.load(row + 1)
            power = (-0.5 * tl.load(row + 2)) * dx * dx - tl.load(row + 3) * dx * dy \
                - 0.5 * tl.load(row + 4) * dy * dy + tl.load(row + 5)
            alpha = tl.minimum(tl.exp(power), alpha_cap)
            alpha = tl.where(alpha >= alpha_min, alpha, 0.0)
            after = t_run * (1.0 - alpha)
            weight = tl.where(after >= t_min, alpha * t_run, 0.0)
            acc_r += weight * tl.load(row + 6)
            acc_g += weight * tl.load(row + 7)
            acc_b += weight * tl.load(row + 8)
            acc_w += weight
            t_run = after
            i += 1
            seeing = (i < count) & (tl.max(t_run, axis=0) >= t_min)
        out = out_ptr + program * (TILE_PX * TILE_PX * 4) + pixel * 4
        tl.store(out + 0, acc_r)
        tl.store(out + 1, acc_g)
        tl.store(out + 2, acc_b)
        tl.store(out + 3, acc_w)


def composite_tiles_triton(
    table: torch.Tensor, tiles: torch.Tensor, starts: torch.Tensor, counts: torch.Tensor,
    splat_of_pair: torch.Tensor, grid_x: int, alpha_cap: float, alpha_min: float, t_min: float,
) -> torch.Tensor:
    """(T, 256, 4): colour without background and total weight of each tile in ``tiles`` (as
    ``rasterize._composite_tiles``); ``starts`` / ``counts`` index the tile's run in ``splat_of_pair``."""
    if triton is None:
        raise RuntimeError("Triton is not installed")
    out = torch.empty(tiles.shape[0], TILE * TILE, 4, dtype=torch.float32, device=table.device)
    if tiles.numel() == 0:
        return out
    _composite_kernel[(tiles.shape[0],)](
        table.contiguous(), splat_of_pair.contiguous(), tiles.contiguous(), starts.contiguous(),
        counts.contiguous(), out, grid_x, alpha_cap, alpha_min, t_min,
        TILE_PX=TILE, WIDTH=TABLE_WIDTH,
    )
    return out
