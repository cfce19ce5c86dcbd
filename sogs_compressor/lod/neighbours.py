"""The k nearest neighbours of every splat, from a few shifted Morton curves (any torch device, chunked, exact
integer keys: the same result on every run).

One Morton curve keeps most neighbours close in its order but cuts space at the faces of its cells: two splats on
either side of a coarse face can be far apart along the curve. Curves whose grids are shifted by non-dyadic
fractions of the box (1/9, 2/9, 3/9 of half its side, ...) put those faces elsewhere, so a pair cut apart on one
curve is close on another. Each splat's candidates are its ``window`` predecessors and successors on each of the
``curves`` orders; the ``k`` nearest distinct ones are kept. Measured on the real guitar (90,854 splats) against an
exact k-d tree, k = 8: one curve with a window of 8 finds 53% of the true 8 nearest, 4 curves with a window of 8
94%, with a window of 16 98% (bench/RESULTS.md, "Decimation").
"""

from __future__ import annotations

import torch

CURVES = 4
"""Morton curves, each on a grid shifted by a further 1/(2 CURVES + 1) of half the box's side."""

WINDOW = 16
"""Candidates per curve on each side of a splat."""

CODE_BITS = 21
"""Grid cells per axis, as bits (3 x 21 = 63-bit codes)."""

INDEX_BITS = 31
"""Low bits of a candidate key that hold its row (rows must number less than 2^31)."""

NONE = -1
"""Neighbour slot with no splat (fewer than k + 1 splats in all)."""

_INDEX_MASK = (1 << INDEX_BITS) - 1
_NO_KEY = torch.iinfo(torch.int64).max


def nearest_neighbours(positions: torch.Tensor, k: int, chunk_rows: int, *, curves: int = CURVES,
                       window: int = WINDOW) -> torch.Tensor:
    """(N, k) int64 rows of each splat's k nearest others among its curve candidates, nearest first (NONE pads).

    ``positions``: (N, 3) finite, on the device that does the work. Device memory: 24 + 12 bytes per splat for
    the positions in float64 (while the curves are made) and float32, 2 x ``curves`` int32 per splat for the curve
    orders, 8k bytes per splat for the result, and chunk temporaries of ``chunk_rows`` x (2 window
    curves) candidates (~60 bytes each).
    """
    n = positions.shape[0]
    if n >= 1 << INDEX_BITS:
        raise ValueError(f"at most {1 << INDEX_BITS} splats, not {n}")
    device = positions.device
    orders, ranks = _curve_orders(positions.to(torch.float64), curves)
    coordinates = [positions[:, axis].to(torch.float32).contiguous() for axis in range(3)]
    steps = torch.cat([torch.arange(1, window + 1, device=device), -torch.arange(1, window + 1, device=device)])
    result = torch.full((n, k), NONE, dtype=torch.int64, device=device)
    for start in range(0, n, chunk_rows):
        rows = torch.arange(start, min(n, start + chunk_rows), device=device)
        candidates = []
        for order, rank in zip(orders, ranks, strict=True):
            at = rank[rows].to(torch.int64).unsqueeze(1) + steps
            inside = (at >= 0) & (at < n)
            candidates.append(torch.where(inside, order[at.clamp(0, n - 1)].to(torch.int64), NONE))
        result[rows] = _nearest_distinct(coordinates, rows, torch.cat(candidates, dim=1), k, curves)
    return result


def _curve_orders(positions: torch.Tensor, curves: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per curve: the rows in curve order and each row's place in it (int32)."""
    p = positions
    low = p.min(dim=0).values
    side = 2 * float((p.max(dim=0).values - low).max().clamp_min(1e-30))  # room for the shifts
    cell = side / (1 << CODE_BITS)
    orders, ranks = [], []
    for curve in range(curves):
        origin = low - side * curve / (2 * (2 * curves + 1))
        q = ((p - origin) / cell).floor().clamp(0, (1 << CODE_BITS) - 1).to(torch.int64)
        code = _spread_bits(q[:, 0]) | (_spread_bits(q[:, 1]) << 1) | (_spread_bits(q[:, 2]) << 2)
        del q
        order = torch.sort(code, stable=True).indices
        del code
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=order.device)
        orders.append(order.to(torch.int32))
        ranks.append(rank.to(torch.int32))
    return orders, ranks


def _spread_bits(v: torch.Tensor) -> torch.Tensor:
    """Spread the low 21 bits of ``v`` so that bit i lands on bit 3i."""
    v = v & 0x1FFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    return (v | (v << 2)) & 0x1249249249249249


def _nearest_distinct(coordinates: list[torch.Tensor], rows: torch.Tensor, candidates: torch.Tensor, k: int,
                      repeats_per_row: int) -> torch.Tensor:
    """The k nearest distinct candidates of each row (itself excluded): keys ``distance bits << 31 | row`` sort
    by squared float32 distance, ties by row, so the choice is exact (``coordinates``: x, y, z of every row)."""
    flat = candidates.clamp_min(0).reshape(-1)
    distance = torch.zeros(candidates.shape, dtype=torch.float32, device=candidates.device)
    for axis in coordinates:  # one axis at a time: three 1-D gathers beat one of (R, C, 3) rows
        offset = axis.index_select(0, flat).view(candidates.shape) - axis.index_select(0, rows).unsqueeze(1)
        distance += offset * offset
    keys = (distance.view(torch.int32).to(torch.int64) << INDEX_BITS) | candidates.clamp_min(0)
    keys = torch.where((candidates < 0) | (candidates == rows.unsqueeze(1)), _NO_KEY, keys)
    # A row is a candidate once per curve at most, so the repeats_per_row x k smallest keys hold k distinct rows.
    keys = _smallest(keys, min(keys.shape[1], repeats_per_row * k))
    keys[:, 1:] = torch.where(keys[:, 1:] == keys[:, :-1], _NO_KEY, keys[:, 1:])  # a row found on several curves
    if keys.shape[1] < k:
        keys = torch.cat([keys, torch.full((keys.shape[0], k - keys.shape[1]), _NO_KEY, device=keys.device)], 1)
    keys = _smallest(keys, k)
    return torch.where(keys == _NO_KEY, NONE, keys & _INDEX_MASK)


def _smallest(keys: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` smallest keys of each row, ascending (keys are distinct within a row but for NO_KEY and
    repeats of one row, which are equal: any choice among equals is the same values)."""
    return torch.topk(keys, count, dim=1, largest=False, sorted=True).values
