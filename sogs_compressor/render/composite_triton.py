"""Front-to-back compositing of depth-sorted splats in one Triton kernel (CUDA), for ``rasterize.render``.

The PyTorch compositor blends 64 depth layers of every busy tile per step; where splats are large or faint
(transmittance never reaches the stop) a tile can hold 100K layers, and the thousands of small steps, each
with a host sync, dominated the quality check at 1M splats. Here one program owns one 16x16 tile: its 256 pixels
live in registers and it walks the tile's sorted splat list once, ``SPLATS_PER_STEP`` splats at a time, stopping
when every pixel has stopped. Same arithmetic as ``rasterize._blend_layers``, which also chains a block of layers
by a cumulative product (alpha = min(0.99, exp(power + log opacity)), alphas under 1/255 skipped, a splat that
would bring the transmittance under 1e-4 is not blended); results agree with the PyTorch path to float32
rounding.

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


SPLATS_PER_STEP = 16
"""Splats a program blends per step: their 16 x 256 pixel terms are evaluated at once and chained by a cumulative
product, so the loads, the loop overhead and the all-pixels-stopped test are paid once per 16 splats."""
NUM_WARPS = 8


if triton is not None:

    @triton.jit
    def _composite_kernel(
        table_ptr, splat_ptr, tiles_ptr, starts_ptr, counts_ptr, out_ptr, grid_x,
        alpha_cap, alpha_min, t_min,
        TILE_PX: tl.constexpr, WIDTH: tl.constexpr, STEP: tl.constexpr,
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
        lane = tl.arange(0, STEP)
        last = (lane == STEP - 1)[:, None]
        i = 0
        seeing = count > 0
        while seeing:
            valid = i + lane < count
            row = table_ptr + tl.load(splat_ptr + start + i + lane, mask=valid, other=0).to(tl.int64) * WIDTH
            u = tl.load(row + 0, mask=valid, other=0.0)
            v = tl.load(row + 1, mask=valid, other=0.0)
            dx = px[None, :] - u[:, None]
            dy = py[None, :] - v[:, None]
            power = (-0.5 * tl.load(row + 2, mask=valid, other=0.0))[:, None] * dx * dx \
                - tl.load(row + 3, mask=valid, other=0.0)[:, None] * dx * dy \
                - (0.5 * tl.load(row + 4, mask=valid, other=0.0))[:, None] * dy * dy \
                + tl.load(row + 5, mask=valid, other=float("-inf"))[:, None]
            alpha = tl.minimum(tl.exp(power), alpha_cap)
            alpha = tl.where(alpha >= alpha_min, alpha, 0.0)  # padding lanes: exp(-inf) = 0
            keep = 1.0 - alpha
            after = t_run[None, :] * tl.cumprod(keep, axis=0)  # transmittance after each splat
            weight = tl.where(after >= t_min, alpha * (after / keep), 0.0)  # after / keep: before the splat
            acc_r += tl.sum(weight * tl.load(row + 6, mask=valid, other=0.0)[:, None], axis=0)
            acc_g += tl.sum(weight * tl.load(row + 7, mask=valid, other=0.0)[:, None], axis=0)
            acc_b += tl.sum(weight * tl.load(row + 8, mask=valid, other=0.0)[:, None], axis=0)
            acc_w += tl.sum(weight, axis=0)
            t_run = tl.sum(tl.where(last, after, 0.0), axis=0)
            i += STEP
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
        TILE_PX=TILE, WIDTH=TABLE_WIDTH, STEP=SPLATS_PER_STEP, num_warps=NUM_WARPS,
    )
    return out
