"""PLAS (Parallel Linear Assignment Sorting) splat order, in device-agnostic PyTorch.

Places splats on a 2-D grid so that grid neighbours have similar attributes, which makes the SOG textures
smoother and the lossless WebP smaller. Algorithm as published (docs formats.md section 4.4): for a shrinking
blur radius, blur the current grid into a target, cut the (randomly rolled) grid into tiles and, within every
tile at once, take random groups of 4 cells and apply the best of the 24 permutations of their contents onto
their positions (least squared distance to the target); repeat while the total distance improves.

Differences from the reference implementation, all so that any N can be sorted without cropping:

* The grid is rectangular: ``width`` columns (default :func:`plas_grid_side`, the SOG texture width) and
  ``ceil(N / width)`` rows. Blur sizes and the tile size are capped per axis; the tile is square and at most
  the shorter side.
* The ``rows * width - N`` padding cells (fewer than one row) are pinned to the end of the last row: no
  permutation may move a splat into them or them out, and the blur target is a normalized convolution that
  ignores them. So the row-major order of the grid *is* the texture order, and the result is a permutation of
  0..N-1 with no holes.
* Random choices come from a seeded host RNG plus an integer hash evaluated on the device, so CPU and CUDA
  make the same choices; results agree up to float rounding of the blur (which can flip near-ties).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from sogs_compressor.compute_policy import plas_broadcast_dots, plas_single_thread
from sogs_compressor.splats import SH_C0, SplatSet

DEFAULT_WEIGHTS: dict[str, float] = {
    "position": 1.0,
    "colour": 1.0,
    "scale": 1.0,
    "opacity": 0.5,
    "rotation": 0.5,
    "sh": 0.0,
}
"""Relative weight of each attribute group in the PLAS distance (a group's expected squared spread is
``weight**2`` whatever its column count). Position, colour and scale follow the Self-Organizing Gaussians
setting (weight 1); opacity and rotation ride along at half weight because they fill textures too (sh0 alpha,
quats); SH AC coefficients are palette labels in SOG, so smooth SH buys little and is off by default."""

CPU_IMPROVEMENT_BREAK = 1e-3
"""A coarser stopping threshold that keeps 100K splats on CPU to seconds (see docs/readme-parts/gpu.md)."""

_M32 = 0xFFFFFFFF


def plas_grid_side(n: int) -> int:
    """Default grid width for ``n`` splats: the SOG texture width ``ceil(sqrt(n) / 4) * 4``.

    Sorting on exactly the texture width makes grid neighbours texture neighbours; the grid then has
    ``ceil(n / width)`` rows (fewer than the texture's multiple-of-4 height, whose extra rows are padding).
    """
    if n < 1:
        raise ValueError(f"need at least one splat, got {n}")
    return int(math.ceil(math.sqrt(n) / 4) * 4)


def _standardize(block: np.ndarray) -> np.ndarray:
    """Centre each column, scale the whole block by one std (keeps relative axis spreads), then by
    1/sqrt(columns) so the block's expected squared norm is 1. Non-finite values are clamped to the finite
    range (NaN to the mean) first: 2DGS log-scales hold -inf."""
    block = np.asarray(block, dtype=np.float64).reshape(block.shape[0], -1).copy()
    for j in range(block.shape[1]):
        col = block[:, j]
        finite = np.isfinite(col)
        if not finite.all():
            if finite.any():
                lo, hi, mean = col[finite].min(), col[finite].max(), col[finite].mean()
            else:
                lo = hi = mean = 0.0
            col[np.isnan(col)] = mean
            col[col == -np.inf] = lo
            col[col == np.inf] = hi
    block -= block.mean(axis=0, keepdims=True)
    std = float(np.sqrt((block**2).mean())) if block.size else 0.0
    if std > 0:
        block /= std
    return block / math.sqrt(block.shape[1])


def _log_positions(positions: np.ndarray) -> np.ndarray:
    """sign(x) * log(|x| + 1): the transform SOG stores positions under (means_l/means_u)."""
    return np.sign(positions) * np.log1p(np.abs(positions))


def _canonical_rotations(rotations: np.ndarray) -> np.ndarray:
    """Unit quaternions with w >= 0 (q and -q are the same rotation)."""
    q = rotations.astype(np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.divide(q, norm, out=np.tile([1.0, 0.0, 0.0, 0.0], (q.shape[0], 1)), where=norm > 0)
    return np.where(q[:, :1] < 0, -q, q)


def plas_features(splats: SplatSet, weights: dict[str, float] | None = None) -> np.ndarray:
    """Standardized, weighted per-splat vectors for :func:`plas_order`: (N, C) float32.

    Groups (keys of ``weights``, missing keys take :data:`DEFAULT_WEIGHTS`): ``position`` (SOG's log
    transform), ``colour`` (``0.5 + SH_C0 * f_dc``, the sh0 texture's RGB), ``scale`` (log-scales),
    ``opacity`` (sigmoid), ``rotation`` (unit quaternion, w >= 0), ``sh`` (f_rest). Groups with weight 0
    (or no columns) are left out.
    """
    merged = dict(DEFAULT_WEIGHTS)
    if weights:
        unknown = set(weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown PLAS weight(s) {sorted(unknown)}; expected {sorted(DEFAULT_WEIGHTS)}")
        merged.update(weights)
    sources = {
        "position": lambda: _log_positions(splats.positions.astype(np.float64)),
        "colour": lambda: 0.5 + SH_C0 * splats.f_dc.astype(np.float64),
        "scale": lambda: splats.log_scales,
        "opacity": lambda: 1.0 / (1.0 + np.exp(-np.clip(splats.opacity_logits.astype(np.float64), -60, 60))),
        "rotation": lambda: _canonical_rotations(splats.rotations),
        "sh": lambda: splats.f_rest,
    }
    blocks = []
    for name, make in sources.items():
        weight = float(merged[name])
        if weight < 0 or not math.isfinite(weight):
            raise ValueError(f"PLAS weight {name}={weight} must be a finite number >= 0")
        if weight == 0:
            continue
        values = make()
        if values.ndim == 1:
            values = values[:, None]
        if values.shape[1] == 0:
            continue
        blocks.append(weight * _standardize(values))
    if not blocks:
        raise ValueError("all PLAS weights are zero: nothing to sort by")
    return np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.float32)


# ---------------------------------------------------------------------------------------------------------
# Building blocks (pure functions over tensors)


def radius_schedule(side: int, min_radius: float = 1.0, factor: float = 0.95) -> list[int]:
    """Blur radii: from side/2 - 1, times ``factor`` per step, while >= ``min_radius`` (integer parts)."""
    radii, radius = [], side / 2 - 1
    while radius >= min_radius:
        radii.append(int(radius))
        radius *= factor
    return radii


def blur_matrix(size: int, kernel: int, mode: str, device: torch.device) -> torch.Tensor:
    """(size, size) matrix M with ``out = in @ M`` a Gaussian blur (sigma = kernel size) of odd length
    ``kernel`` along one axis; ``mode`` is ``circular`` or ``reflect`` (edge not repeated)."""
    half = kernel // 2
    taps = torch.arange(-half, half + 1, dtype=torch.float64, device=device)
    w = torch.exp(-(taps**2) / (2.0 * kernel**2))
    w = (w / w.sum()).to(torch.float32)
    out_idx = torch.arange(size, device=device).repeat_interleave(kernel)
    src = out_idx + taps.to(torch.int64).repeat(size)
    if mode == "circular":
        src = src % size
    elif mode == "reflect":
        src = torch.where(src < 0, -src, src)
        src = torch.where(src > size - 1, 2 * (size - 1) - src, src)
    else:
        raise ValueError(f"unknown border mode {mode!r}")
    m = torch.zeros((size, size), dtype=torch.float32, device=device)
    m.index_put_((src, out_idx), w.repeat(size), accumulate=True)
    return m


def blur_grid(grid: torch.Tensor, mask: torch.Tensor | None, kx: int, ky: int) -> torch.Tensor:
    """Separable blur of a (H, W, C) grid: circular along x, reflect along y. With a (H, W) ``mask``, a
    normalized convolution that ignores masked-out (padding) cells."""
    h, w, c = grid.shape
    mx = blur_matrix(w, kx, "circular", grid.device)
    my = blur_matrix(h, ky, "reflect", grid.device)

    def sep(t: torch.Tensor) -> torch.Tensor:  # t: (H, W, C')
        t = torch.einsum("hwc,wv->hvc", t, mx)
        return torch.einsum("hwc,hg->gwc", t, my)

    if mask is None:
        return sep(grid)
    m = mask.to(grid.dtype)[:, :, None]
    blurred = sep(torch.cat([grid * m, m], dim=2))
    return blurred[:, :, :c] / blurred[:, :, c:].clamp_min(1e-12)


def tile_cells(h: int, w: int, block: int, dy: int, dx: int, device: torch.device) -> torch.Tensor:
    """Flat grid indices of the cells in each block x block tile of the grid rolled by (dy, dx):
    (tiles, block*block). Only the top-left ``(h // block) x (w // block)`` tiles of the rolled grid."""
    ys = (torch.arange((h // block) * block, device=device) - dy) % h
    xs = (torch.arange((w // block) * block, device=device) - dx) % w
    cells = ys[:, None] * w + xs[None, :]
    nby, nbx = h // block, w // block
    return cells.reshape(nby, block, nbx, block).permute(0, 2, 1, 3).reshape(nby * nbx, block * block)


def hashed_permutation(n: int, key: int, device: torch.device) -> torch.Tensor:
    """A pseudo-random permutation of 0..n-1 from a 31-bit ``key``, identical on every device (integer
    hash of the index, then a stable argsort). Products stay below 2**63, so int64 never overflows."""
    h = (torch.arange(n, device=device, dtype=torch.int64) * 0x2545F491 + key) & _M32
    for mult in (0x6C8E9CF5, 0x7FEB352D):
        h = h ^ (h >> 15)
        h = (h * mult) & _M32
    h = h ^ (h >> 16)
    return torch.argsort(h, stable=True)


_PERMS = list(itertools.permutations(range(4)))  # _PERMS[0] is the identity


def _perm_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse permutations (24, 4) and the one-hot score matrix (16, 24): entry (i*4+j, p) is 1 when
    permutation p sends the element in slot i to slot j."""
    perms = torch.tensor(_PERMS, dtype=torch.int64)
    onehot = torch.nn.functional.one_hot(perms, 4).to(torch.float32).reshape(24, 16).t().contiguous()
    return torch.argsort(perms, dim=1).to(device), onehot.to(device)


@dataclass
class PinnedTiles:
    """The tiles of a configuration that hold padding cells: their indices (P,) and movable flags (P, S),
    kept in the same slot order as the values."""

    tiles: torch.Tensor
    movable: torch.Tensor

    @staticmethod
    def find(movable: torch.Tensor) -> PinnedTiles | None:
        tiles = torch.nonzero(~movable.all(dim=1)).reshape(-1)
        return None if tiles.numel() == 0 else PinnedTiles(tiles, movable.index_select(0, tiles))

    def shuffled(self, shuffle: torch.Tensor) -> PinnedTiles:
        return PinnedTiles(self.tiles, self.movable.index_select(1, shuffle))


def group_dots(values: torch.Tensor, targets: torch.Tensor, broadcast: bool) -> torch.Tensor:
    """(T, G, 4, 4) dot products of each group element with each group slot's target.

    Two equal formulations: broadcast and reduce, or an einsum (which one: ``compute_policy.plas_broadcast_dots``).
    """
    if broadcast:
        return (values[:, :, :, None, :] * targets[:, :, None, :, :]).sum(dim=-1)
    return torch.einsum("tgic,tgjc->tgij", values, targets)


def best_group_permutations(
    values: torch.Tensor, targets: torch.Tensor, pinned: PinnedTiles | None, onehot: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For (T, G, 4, C) group contents and the targets of their 4 slots: the index (T, G) of the permutation
    with the least summed squared distance, and how much it lowers that sum (T, G) vs. leaving them.

    Minimizing sum ||v_i - t_p(i)||^2 is maximizing sum v_i . t_p(i) (norms are permutation-invariant). In
    the ``pinned`` tiles, permutations that move a pinned (padding) cell or put a splat into one are excluded;
    the identity is always allowed.
    """
    dots = group_dots(values, targets, broadcast=plas_broadcast_dots(values.device))
    t, g = dots.shape[:2]
    scores = dots.reshape(t, g, 16) @ onehot
    if pinned is not None:
        movable = pinned.movable.reshape(-1, g, 4)
        eye = torch.eye(4, dtype=torch.bool, device=movable.device)
        allowed = (movable[:, :, :, None] & movable[:, :, None, :]) | eye
        banned = (~allowed).to(torch.float32).reshape(-1, g, 16) @ onehot
        sub = scores.index_select(0, pinned.tiles).masked_fill(banned > 0, float("-inf"))
        scores.index_copy_(0, pinned.tiles, sub)
    best_score, best = scores.max(dim=-1)
    return best, 2.0 * (best_score - scores[:, :, 0])


def plas_step(
    values: torch.Tensor,
    extras: list[torch.Tensor],
    targets: torch.Tensor,
    pinned: PinnedTiles | None,
    inverse_perms: torch.Tensor,
    onehot: torch.Tensor,
) -> tuple[torch.Tensor, list[torch.Tensor], float]:
    """One parallel assignment pass over all tiles, whose slots are grouped 4 by 4 in storage order.

    values (T, S, C) and targets (T, S, C), S a multiple of 4; ``extras`` are (T, S) tensors that travel with
    the values (the splat ids). Returns the re-arranged values and extras, and the drop in total squared
    distance.
    """
    t, s, c = values.shape
    best, gain = best_group_permutations(
        values.reshape(t, s // 4, 4, c),
        targets.reshape(t, s // 4, 4, c),
        pinned,
        onehot,
    )
    # Slot j of group g receives the element from slot inverse[j]: one flat row gather.
    base = torch.arange(0, t * s, 4, device=values.device)[:, None]
    source = (base + inverse_perms[best].reshape(t * s // 4, 4)).reshape(-1)
    new_values = values.reshape(t * s, c).index_select(0, source).reshape(t, s, c)
    new_extras = [e.reshape(-1).index_select(0, source).reshape(t, s) for e in extras]
    return new_values, new_extras, float(gain.sum(dtype=torch.float64))


def _distance(values: torch.Tensor, targets: torch.Tensor, movable: torch.Tensor | None) -> float:
    d = ((values - targets) ** 2).sum(dim=-1)
    if movable is not None:
        d = d * movable
    return float(d.sum(dtype=torch.float64))


# ---------------------------------------------------------------------------------------------------------


def plas_order(
    features: np.ndarray,
    seed: int = 0,
    device: torch.device | str = "cpu",
    improvement_break: float = 1e-4,
    min_block_size: int = 16,
    progress: Callable[[str, float], None] | None = None,
    width: int | None = None,
    min_blur_radius: float = 1.0,
    shuffle: bool = True,
) -> np.ndarray:
    """Splat order for the textures: (N,) int64 permutation of 0..N-1, row-major over a ``width``-wide grid.

    ``order[y * width + x]`` is the input row placed at texel (x, y). ``features`` (N, C) are compared by raw
    squared L2 distance, so scale them first (:func:`plas_features`). ``improvement_break`` stops a
    tile configuration once a pass improves the distance by less than that fraction (1e-4 as published;
    :data:`CPU_IMPROVEMENT_BREAK` for quicker CPU runs). ``shuffle`` starts from a seeded random placement, as
    every published caller does.
    """
    feats = np.asarray(features)
    if feats.ndim != 2 or feats.shape[0] < 1 or feats.shape[1] < 1:
        raise ValueError(f"features must be (N>=1, C>=1), got shape {feats.shape}")
    if not np.isfinite(feats).all():
        raise ValueError("features hold non-finite values (build them with plas_features)")
    n, c = feats.shape
    w = plas_grid_side(n) if width is None else int(width)
    if w < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    h = -(-n // w)
    device = torch.device(device)
    rng = random.Random(seed)
    start = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    report = progress or (lambda stage, fraction: None)
    report("plas", 0.0)

    block_cap = min(h, w) // 2 * 2
    if block_cap < 2:
        report("plas", 1.0)
        return start.astype(np.int64)

    with torch.inference_mode(), _single_cpu_thread(device):
        cells = h * w
        grid = torch.zeros((cells, c), dtype=torch.float32, device=device)
        grid[:n] = torch.from_numpy(np.ascontiguousarray(feats[start], dtype=np.float32)).to(device)
        ids = torch.arange(cells, dtype=torch.int64, device=device)
        ids[:n] = torch.from_numpy(start.astype(np.int64)).to(device)
        mask_flat = None if cells == n else torch.arange(cells, device=device) < n
        mask_grid = None if mask_flat is None else mask_flat.reshape(h, w)
        inverse_perms, onehot = _perm_tables(device)

        radii = radius_schedule(max(h, w), min_blur_radius)
        for step, radius in enumerate(radii):
            kx = _odd(min(w - 1, 2 * radius + 1))
            ky = _odd(min(h - 1, 2 * radius + 1))
            target = blur_grid(grid.reshape(h, w, c), mask_grid, kx, ky).reshape(cells, c)
            block = min(max(kx + 1, min_block_size), block_cap) // 2 * 2
            grid, ids = _sort_at_radius(
                grid, ids, target, mask_flat, h, w, block, improvement_break, rng, inverse_perms, onehot
            )
            report("plas", (step + 1) / len(radii))

        order = ids[:n].cpu().numpy()
    report("plas", 1.0)
    return order


@contextlib.contextmanager
def _single_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run the block on one intra-op thread where ``compute_policy.plas_single_thread`` says so, restoring the
    setting after."""
    if not plas_single_thread(device):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _odd(k: int) -> int:
    return max(1, k if k % 2 else k - 1)


def _sort_at_radius(
    grid: torch.Tensor,
    ids: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None,
    h: int,
    w: int,
    block: int,
    improvement_break: float,
    rng: random.Random,
    inverse_perms: torch.Tensor,
    onehot: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tile configurations at one blur radius: a new random roll each time, until a configuration brings no
    improving pass (but at least four configurations, as published).

    Within a configuration the tile slots are shuffled by a fresh random permutation before each pass (the
    random groups of 4); ``positions`` remembers which tile position each slot now stands for, so values,
    targets and ids are written back to the grid once, at the end.
    """
    device = grid.device
    c = grid.shape[1]
    config = 0
    while True:
        cells = tile_cells(h, w, block, rng.randrange(block), rng.randrange(block), device)
        t, s = cells.shape
        flat_cells = cells.reshape(-1)
        values = grid.index_select(0, flat_cells).reshape(t, s, c)
        targets = target.index_select(0, flat_cells).reshape(t, s, c)
        tile_ids = ids.index_select(0, flat_cells).reshape(t, s)
        movable = None if mask is None else mask.index_select(0, flat_cells).reshape(t, s)
        pinned = None if movable is None else PinnedTiles.find(movable)
        positions = torch.arange(s, device=device)
        dist = _distance(values, targets, movable)
        improved = False
        while dist > 0:
            shuffle = hashed_permutation(s, rng.getrandbits(31), device)
            positions = positions.index_select(0, shuffle)
            values = values.index_select(1, shuffle)
            targets = targets.index_select(1, shuffle)
            if pinned is not None:  # pinned cells never move, so their flags belong to the slots
                pinned = pinned.shuffled(shuffle)
            values, extras, gain = plas_step(
                values, [tile_ids.index_select(1, shuffle)], targets, pinned, inverse_perms, onehot
            )
            tile_ids = extras[0]
            relative = gain / dist
            dist -= gain
            if relative < improvement_break:
                break
            improved = True
        write_to = cells.index_select(1, positions).reshape(-1)
        grid.index_copy_(0, write_to, values.reshape(-1, c))
        ids.index_copy_(0, write_to, tile_ids.reshape(-1))
        if not improved and config >= 3:
            return grid, ids
        config += 1
