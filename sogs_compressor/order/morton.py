"""Morton (Z-order) splat order, exactly as splat-transform sorts before writing SOG (formats.md 2.3).

Over an index set: bbox of x, y, z (NaN ignored, as JS comparisons ignore it); any non-finite extent leaves the
set unsorted, all-zero extents too. Per axis ``q = min(1023, (v - min) * (1024 / extent))`` truncated (NaN -> 0,
zero extent -> 0); code = 10-bit interleave with x in bit 0; stable sort by code; every run of equal codes longer
than ``REFINE_RUN`` is sorted again the same way with its own bbox.

splat-transform recurses depth-first; here every pending run of one depth is handled in one vectorized pass
(runs are disjoint and each only permutes itself, so the order is the same), in float64 like JavaScript.

Two implementations give the same permutation: ``morton_order`` with torch on a device, and ``morton_order_host``
in numpy, which imports no torch, so that a scene can be ordered while the process is still importing torch
(``prefetch.ScenePrefetch``). Every step is an exact IEEE operation (float64 subtraction, multiplication and
division, truncation, comparisons) or a stable sort, so the two agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

REFINE_RUN = 256
"""Runs of equal codes longer than this are re-sorted with their own bounding box."""

BITS = 10
CELLS = 1 << BITS


def morton_order(positions: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Permutation (int64, shape (N,)) that puts the splats in Morton order: ``positions[order]`` is sorted."""
    positions = np.asarray(positions)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must be (N, 3), not {positions.shape}")
    import torch

    n = positions.shape[0]
    device = torch.device(device)
    pos = torch.from_numpy(np.ascontiguousarray(positions, dtype=np.float32)).to(device).to(torch.float64)
    order = torch.arange(n, dtype=torch.int64, device=device)
    # Pending runs as (start, length) slices of ``order``; one pass per recursion depth.
    starts = torch.zeros(1 if n > 0 else 0, dtype=torch.int64, device=device)
    lengths = torch.full_like(starts, n)
    while starts.numel() > 0:
        starts, lengths = _refine_runs(pos, order, starts, lengths)
    return order.cpu().numpy()


def _refine_runs(
    pos: torch.Tensor, order: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort every run ``order[start:start+length]`` by its own Morton codes (in place); return the next runs."""
    import torch

    device = order.device
    runs = starts.numel()
    run_id = torch.repeat_interleave(torch.arange(runs, device=device), lengths)
    slots = torch.repeat_interleave(starts, lengths) + _ranks(lengths)
    members = order[slots]
    p = pos[members]

    lo = _run_reduce(torch.where(torch.isnan(p), float("inf"), p), run_id, runs, "amin")
    hi = _run_reduce(torch.where(torch.isnan(p), float("-inf"), p), run_id, runs, "amax")
    extent = hi - lo
    sortable = torch.isfinite(extent).all(dim=1) & (extent != 0).any(dim=1)
    scale = torch.where(extent == 0, torch.zeros_like(extent), CELLS / extent)

    q = (p - lo[run_id]) * scale[run_id]
    q = torch.nan_to_num(torch.clamp(q, max=CELLS - 1), nan=0.0).to(torch.int64)  # NaN -> 0, like `>>> 0`
    code = _part1by2(q[:, 0]) | (_part1by2(q[:, 1]) << 1) | (_part1by2(q[:, 2]) << 2)
    code = torch.where(sortable[run_id], code, torch.zeros_like(code))  # unsortable runs keep their order

    # One stable sort of (run, code) keeps every run within its own slots.
    key = (run_id << (3 * BITS)) | code
    key, perm = torch.sort(key, stable=True)
    order[slots] = members[perm]

    # Next depth: runs of equal (run, code) longer than REFINE_RUN, inside sortable runs only.
    change = torch.ones(key.numel(), dtype=torch.bool, device=device)
    change[1:] = key[1:] != key[:-1]
    first = torch.nonzero(change).flatten()
    size = torch.diff(first, append=torch.tensor([key.numel()], device=device))
    again = (size > REFINE_RUN) & sortable[run_id[perm[first]]]
    return slots[first[again]], size[again]


def _ranks(lengths: torch.Tensor) -> torch.Tensor:
    """0, 1, ..., length-1 for every run, concatenated."""
    import torch

    total = int(lengths.sum())
    offsets = torch.cumsum(lengths, 0) - lengths
    return torch.arange(total, device=lengths.device) - torch.repeat_interleave(offsets, lengths)


def _run_reduce(values: torch.Tensor, run_id: torch.Tensor, runs: int, reduce: str) -> torch.Tensor:
    """Per-run min or max of (rows, 3) values."""
    import torch

    out = torch.zeros(runs, values.shape[1], dtype=values.dtype, device=values.device)
    index = run_id.unsqueeze(1).expand_as(values)
    return out.scatter_reduce_(0, index, values, reduce=reduce, include_self=False)


def _part1by2(v: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Spread the low 10 bits of ``v`` so that bit i lands on bit 3i (int64 tensors and arrays alike)."""
    v = v & 0x3FF
    v = (v | (v << 16)) & 0xFF0000FF
    v = (v | (v << 8)) & 0x0300F00F
    v = (v | (v << 4)) & 0x030C30C3
    v = (v | (v << 2)) & 0x09249249
    return v


# --- the same order in numpy (no torch) ------------------------------------------------------------------------

def morton_order_host(positions: np.ndarray, should_stop: Callable[[], bool] | None = None) -> np.ndarray | None:
    """``morton_order`` in numpy: the same permutation (int64, shape (N,)), without importing torch.

    ``should_stop``: asked between passes; None is returned once it says True (the order is not wanted any more).
    """
    positions = np.asarray(positions)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must be (N, 3), not {positions.shape}")
    n = positions.shape[0]
    pos = np.ascontiguousarray(positions, dtype=np.float32).astype(np.float64)
    order = np.arange(n, dtype=np.int64)
    starts = np.zeros(1 if n > 0 else 0, dtype=np.int64)
    lengths = np.full_like(starts, n)
    with np.errstate(all="ignore"):  # inf - inf and the like, as on the device: no warning on stderr
        while starts.size > 0:
            if should_stop is not None and should_stop():
                return None
            starts, lengths = _refine_runs_host(pos, order, starts, lengths)
    return order


def _refine_runs_host(pos: np.ndarray, order: np.ndarray, starts: np.ndarray,
                      lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_refine_runs`` in numpy (each step mirrors the torch one)."""
    runs = starts.size
    run_id = np.repeat(np.arange(runs, dtype=np.int64), lengths)
    offsets = np.cumsum(lengths) - lengths  # where each run begins among the concatenated members
    slots = np.repeat(starts, lengths) + (np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(offsets, lengths))
    members = order[slots]
    p = pos[members]

    nan = np.isnan(p)
    lo = np.minimum.reduceat(np.where(nan, np.inf, p), offsets, axis=0)
    hi = np.maximum.reduceat(np.where(nan, -np.inf, p), offsets, axis=0)
    del nan
    extent = hi - lo
    sortable = np.isfinite(extent).all(axis=1) & (extent != 0).any(axis=1)
    scale = np.where(extent == 0, 0.0, CELLS / extent)
    q = (p - lo[run_id]) * scale[run_id]
    del p
    q = np.nan_to_num(np.minimum(q, CELLS - 1), nan=0.0).astype(np.int64)  # NaN -> 0, like `>>> 0`
    code = _part1by2(q[:, 0]) | (_part1by2(q[:, 1]) << 1) | (_part1by2(q[:, 2]) << 2)
    del q
    code = np.where(sortable[run_id], code, 0)  # unsortable runs keep their order

    key = (run_id << (3 * BITS)) | code
    perm = np.argsort(key, kind="stable")
    key = key[perm]
    order[slots] = members[perm]

    change = np.ones(key.size, dtype=bool)
    change[1:] = key[1:] != key[:-1]
    first = np.flatnonzero(change)
    size = np.diff(first, append=key.size)
    again = (size > REFINE_RUN) & sortable[run_id[perm[first]]]
    return slots[first[again]], size[again]

