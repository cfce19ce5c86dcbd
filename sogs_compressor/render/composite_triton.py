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

from sogs_compressor.render import segments
from sogs_compressor.triton_support import kernels_runnable

TILE = 16
TABLE_WIDTH = 9  # [u, v, conic a, b, c, log opacity, r, g, b] (rasterize._splat_table)


def composite_available(device: torch.device) -> bool:
    """True where the kernel runs: a CUDA device Triton supports, or any device under the interpreter."""
    return kernels_runnable(device)


SPLATS_PER_STEP = 16
"""Splats a program blends per step: their 16 x 256 pixel terms are evaluated at once and chained by a cumulative
product, so the loads, the loop overhead and the all-pixels-stopped test are paid once per 16 splats."""
NUM_WARPS = 8


if triton is not None:

    @triton.jit
    def _alpha_block(table_ptr, splat_ptr, first, i, count, px, py, alpha_cap, alpha_min,
                     WIDTH: tl.constexpr, STEP: tl.constexpr):
        """(alpha (STEP, pixels), table rows (STEP,), valid lanes) of the splats i .. i + STEP of a run."""
        lane = tl.arange(0, STEP)
        valid = i + lane < count
        row = table_ptr + tl.load(splat_ptr + first + i + lane, mask=valid, other=0).to(tl.int64) * WIDTH
        dx = px[None, :] - tl.load(row + 0, mask=valid, other=0.0)[:, None]
        dy = py[None, :] - tl.load(row + 1, mask=valid, other=0.0)[:, None]
        power = (-0.5 * tl.load(row + 2, mask=valid, other=0.0))[:, None] * dx * dx \
            - tl.load(row + 3, mask=valid, other=0.0)[:, None] * dx * dy \
            - (0.5 * tl.load(row + 4, mask=valid, other=0.0))[:, None] * dy * dy \
            + tl.load(row + 5, mask=valid, other=float("-inf"))[:, None]
        alpha = tl.minimum(tl.exp(power), alpha_cap)
        return tl.where(alpha >= alpha_min, alpha, 0.0), row, valid  # padding lanes: exp(-inf) = 0

    @triton.jit
    def _pixel_centres(tile, grid_x, TILE_PX: tl.constexpr):
        pixel = tl.arange(0, TILE_PX * TILE_PX)
        px = (pixel % TILE_PX).to(tl.float32) + 0.5 + ((tile % grid_x) * TILE_PX).to(tl.float32)
        py = (pixel // TILE_PX).to(tl.float32) + 0.5 + ((tile // grid_x) * TILE_PX).to(tl.float32)
        return pixel, px, py

    @triton.jit(do_not_specialize=["grid_x"])  # one compile for every picture width (see assign_triton)
    def _transmittance_kernel(
        table_ptr, splat_ptr, segments_ptr, tiles_ptr, starts_ptr, counts_ptr, out_ptr, grid_x, alpha_cap,
        alpha_min, t_min, TILE_PX: tl.constexpr, WIDTH: tl.constexpr, STEP: tl.constexpr,
    ):
        """Per listed segment: the product of (1 - alpha) over its splats at each pixel (stops once every pixel is
        under the transmittance stop: what follows it in the tile is then invisible anyway)."""
        segment = tl.load(segments_ptr + tl.program_id(0))
        first = tl.load(starts_ptr + segment)
        count = tl.load(counts_ptr + segment)
        pixel, px, py = _pixel_centres(tl.load(tiles_ptr + segment), grid_x, TILE_PX)
        t_run = tl.full([TILE_PX * TILE_PX], 1.0, tl.float32)
        last = (tl.arange(0, STEP) == STEP - 1)[:, None]
        i = 0
        going = count > 0
        while going:
            alpha, row, valid = _alpha_block(table_ptr, splat_ptr, first, i, count, px, py, alpha_cap, alpha_min,
                                             WIDTH, STEP)
            after = t_run[None, :] * tl.cumprod(1.0 - alpha, axis=0)
            t_run = tl.sum(tl.where(last, after, 0.0), axis=0)
            i += STEP
            going = (i < count) & (tl.max(t_run, axis=0) >= t_min)
        tl.store(out_ptr + segment * (TILE_PX * TILE_PX) + pixel, t_run)

    @triton.jit(do_not_specialize=["grid_x"])
    def _composite_kernel(
        table_ptr, splat_ptr, tiles_ptr, starts_ptr, counts_ptr, front_ptr, fronts_ptr, transmit_ptr, out_ptr,
        grid_x, alpha_cap, alpha_min, t_min,
        TILE_PX: tl.constexpr, WIDTH: tl.constexpr, STEP: tl.constexpr,
    ):
        """Per segment: blend its splats front to back, starting from the transmittance left by the ``fronts``
        segments in front of it (rows ``front`` .. ``front + fronts`` of ``transmit``)."""
        program = tl.program_id(0)
        first = tl.load(starts_ptr + program)
        count = tl.load(counts_ptr + program)
        pixel, px, py = _pixel_centres(tl.load(tiles_ptr + program), grid_x, TILE_PX)
        t_run = tl.full([TILE_PX * TILE_PX], 1.0, tl.float32)
        front = tl.load(front_ptr + program)
        for k in range(tl.load(fronts_ptr + program)):
            t_run *= tl.load(transmit_ptr + (front + k) * (TILE_PX * TILE_PX) + pixel)
        acc_r = tl.zeros([TILE_PX * TILE_PX], tl.float32)
        acc_g = tl.zeros([TILE_PX * TILE_PX], tl.float32)
        acc_b = tl.zeros([TILE_PX * TILE_PX], tl.float32)
        acc_w = tl.zeros([TILE_PX * TILE_PX], tl.float32)
        last = (tl.arange(0, STEP) == STEP - 1)[:, None]
        i = 0
        seeing = (count > 0) & (tl.max(t_run, axis=0) >= t_min)
        while seeing:
            alpha, row, valid = _alpha_block(table_ptr, splat_ptr, first, i, count, px, py, alpha_cap, alpha_min,
                                             WIDTH, STEP)
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
    segment: int | None = None,
) -> torch.Tensor:
    """(T, 256, 4): colour without background and total weight of each tile in ``tiles`` (as
    ``rasterize._composite_tiles``); ``starts`` / ``counts`` index the tile's run in ``splat_of_pair``.
    Runs longer than ``segment`` (default ``segments.SEGMENT``) are blended in segments side by side."""
    if triton is None:
        raise RuntimeError("Triton is not installed")
    segment = segment or segments.SEGMENT
    device = table.device
    if tiles.numel() == 0:
        return torch.empty(0, TILE * TILE, 4, dtype=torch.float32, device=device)
    cut = segments.cut_runs(tiles, starts, counts, segment)
    table, splat_of_pair = table.contiguous(), splat_of_pair.contiguous()
    settings = {"TILE_PX": TILE, "WIDTH": TABLE_WIDTH, "STEP": SPLATS_PER_STEP, "num_warps": NUM_WARPS}
    transmit = torch.ones(cut.count, TILE * TILE, dtype=torch.float32, device=device)
    if cut.followed.numel():  # their own transmittance first
        _transmittance_kernel[(cut.followed.shape[0],)](table, splat_of_pair, cut.followed, cut.tiles, cut.starts,
                                                        cut.counts, transmit, grid_x, alpha_cap, alpha_min, t_min,
                                                        **settings)
    out = torch.empty(cut.count, TILE * TILE, 4, dtype=torch.float32, device=device)
    _composite_kernel[(cut.count,)](table, splat_of_pair, cut.tiles, cut.starts, cut.counts, cut.front, cut.index,
                                   transmit, out, grid_x, alpha_cap, alpha_min, t_min, **settings)
    if cut.count == tiles.shape[0]:
        return out
    return torch.zeros(tiles.shape[0], TILE * TILE, 4, dtype=torch.float32, device=device).index_add_(0, cut.owner,
                                                                                                       out)


def warm_up(device: torch.device) -> None:
    """Compile both kernels for ``device`` on two splats in one cut tile (a 256-pixel-wide picture, as the quality
    check renders), so a fresh process does not compile them inside its first render."""
    table = torch.zeros(3, TABLE_WIDTH, device=device)
    table[:, 2] = table[:, 4] = 1.0
    table[2, 5] = float("-inf")
    one = torch.ones(1, dtype=torch.int64, device=device)
    composite_tiles_triton(table, one * 3, one * 0, one * 2, torch.arange(2, device=device), 16, 0.99, 1.0 / 255.0,
                           1e-4, segment=1)
