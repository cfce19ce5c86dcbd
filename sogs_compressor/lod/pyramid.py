"""A level-of-detail pyramid: level 0 is the scene itself, each further level about half the one before it.

Each level is decimated from the previous one (``lod.decimate``), as splat-transform's ``tools/lod-pyramid.mjs``
halves a scene repeatedly: a chain of 2x cuts costs about as much as one cut from the input (the sizes sum to less
than the input) and every level keeps what the finer one kept.

How many levels: the PlayCanvas engine shows level ``i`` for nodes from ``lodBaseDistance x lodMultiplier^(i-1)``
to ``lodBaseDistance x lodMultiplier^i`` away (defaults 5 and 3; ``lod.quality`` has the rule): each level is seen
from 3x further, i.e. at 1/9 of the screen area, so halving per level is on the safe side. Defaults: at most ``DEFAULT_MAX_LEVELS`` levels, none smaller than ``DEFAULT_MIN_SPLATS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from sogs_compressor.splats import SplatSet

if TYPE_CHECKING:
    import torch

DEFAULT_MAX_LEVELS = 5
"""Levels 0..4: the coarsest holds 1/16 of the scene, which the engine shows from 3^3 = 27x the base distance on
(135 world units with its defaults): past the far side of most scenes this tool is used for."""

DEFAULT_MIN_SPLATS = 16384
"""No level (other than the input) smaller than this: below it a whole level fits in one small chunk (a few
hundred KB), so a coarser one would save the viewer almost nothing."""

MAX_LEVELS = 16
"""The most levels we write or read: 2^15 x 16K = 512M splats at level 0."""

LevelCallback = Callable[[int, int], None]
"""Called after each level is made with (level, splats)."""


def level_counts(count: int, levels: int | None = None, min_splats: int | None = None) -> list[int]:
    """Splats per level, level 0 first: ``count``, then each ``ceil(half)`` of the one before.

    ``levels`` alone: exactly that many levels (each at least 1 splat). ``min_splats`` alone: halve while the next
    level keeps at least that many (at most ``MAX_LEVELS``). Neither: ``DEFAULT_MAX_LEVELS`` and
    ``DEFAULT_MIN_SPLATS``. Both: at most ``levels``, none below ``min_splats``.
    """
    if count < 1:
        raise ValueError("a pyramid needs at least one splat")
    if levels is not None and not 1 <= levels <= MAX_LEVELS:
        raise ValueError(f"levels must be 1..{MAX_LEVELS}, not {levels}")
    if levels is None and min_splats is None:
        levels, min_splats = DEFAULT_MAX_LEVELS, DEFAULT_MIN_SPLATS
    most = levels if levels is not None else MAX_LEVELS
    floor = 1 if min_splats is None else max(1, min_splats)
    counts = [count]
    while len(counts) < most:
        half = math.ceil(counts[-1] / 2)
        if half >= counts[-1] or half < floor:
            break
        counts.append(half)
    if levels is not None and min_splats is None and len(counts) < levels:
        raise ValueError(f"{count} splats cannot make {levels} levels of halves")
    return counts


def build_pyramid(splats: SplatSet, counts: list[int], *, device: torch.device | str = "cpu", seed: int = 0,
                  on_level: LevelCallback | None = None) -> list[SplatSet]:
    """``splats`` (level 0, kept as it is) and its decimations to ``counts[1:]``, each from the level before.

    Seeded and deterministic like ``decimate``: level ``i`` uses seed ``seed + i``.
    """
    from sogs_compressor.lod.decimate import decimate

    if not counts or counts[0] != splats.count:
        raise ValueError("counts[0] must be the scene's splat count")
    levels = [splats]
    for level, target in enumerate(counts[1:], start=1):
        levels.append(decimate(levels[-1], target, device=device, seed=seed + level))
        if on_level is not None:
            on_level(level, target)
    return levels
