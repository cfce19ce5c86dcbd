"""Long runs of one tile's depth-sorted splats cut into segments that are blended side by side.

At a low resolution one 16x16 tile can hold hundreds of thousands of splats while its neighbours hold a few
hundred; blending tile by tile then waits on that one tile (thousands of sequential steps). Each run is cut into
segments of at most ``SEGMENT`` splats. A first pass multiplies out the transmittance of every segment that has
another behind it; each segment then blends from the product of the segments in front of it. That is the same
rule as walking the whole run: only the rounding of the starting transmittance differs. Both compositors (the
PyTorch one in ``rasterize`` and the Triton one) use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SEGMENT = 4096
"""Longest run of splats one unit of work blends."""


@dataclass
class Segments:
    """Segment i covers pairs ``starts[i] .. starts[i] + counts[i]`` of tile ``tiles[i]``; it is number
    ``index[i]`` of its tile (row ``owner[i]`` of the tiles given), whose first segment is ``front[i]``.
    ``followed``: the segments with another segment of their tile behind them (their transmittance is needed)."""

    tiles: torch.Tensor
    starts: torch.Tensor
    counts: torch.Tensor
    owner: torch.Tensor
    index: torch.Tensor
    front: torch.Tensor
    followed: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.tiles.shape[0])


def cut_runs(tiles: torch.Tensor, starts: torch.Tensor, counts: torch.Tensor, segment: int) -> Segments:
    """The segments of the runs (``tiles``, ``starts``, ``counts``) at most ``segment`` long."""
    device = tiles.device
    pieces = torch.clamp((counts + segment - 1) // segment, min=1)
    owner = torch.repeat_interleave(torch.arange(tiles.shape[0], device=device), pieces)
    first_piece = torch.cumsum(pieces, 0) - pieces
    index = torch.arange(owner.shape[0], device=device) - first_piece[owner]
    return Segments(
        tiles=tiles[owner].contiguous(),
        starts=(starts[owner] + index * segment).contiguous(),
        counts=torch.clamp(counts[owner] - index * segment, max=segment).contiguous(),
        owner=owner,
        index=index.contiguous(),
        front=first_piece[owner].contiguous(),
        followed=torch.nonzero(index < pieces[owner] - 1).reshape(-1).contiguous(),
    )


def starting_transmittance(segments: Segments, transmit: torch.Tensor) -> torch.Tensor:
    """(S, P): each segment's starting transmittance, the product of the ``transmit`` rows of the segments in front
    of it in its tile (1 for a tile's first segment)."""
    start = torch.ones_like(transmit)
    deepest = int(segments.index.max()) if segments.count else 0
    for k in range(deepest):
        behind = torch.nonzero(segments.index > k).reshape(-1)
        start[behind] *= transmit[segments.front[behind] + k]
    return start
