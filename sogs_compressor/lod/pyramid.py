"""A level-of-detail pyramid: level 0 is the scene itself, each further level about half the one before it.

Each level is decimated from the previous one (``lod.decimate``), as splat-transform's ``tools/lod-pyramid.mjs``
halves a scene repeatedly: a chain of 2x cuts costs about as much as one cut from the input (the sizes sum to less
than the input) and every level keeps what the finer one kept.

How many levels: the PlayCanvas engine shows level ``i`` for nodes from ``lodBaseDistance x lodMultiplier^(i-1)``
to ``lodBaseDistance x lodMultiplier^i`` away (defaults 5 and 3; ``lod.quality`` has the rule): each level is seen
from 3x further, i.e. at 1/9 of the screen area, so halving per level is on the safe side. Defaults: at most
``DEFAULT_MAX_LEVELS`` levels, none smaller than ``DEFAULT_MIN_SPLATS``.

A pyramid can also be given, one file per level (``--lod-input levels``): ``check_level_inputs`` and
``check_given_levels`` say what such a set must be.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sogs_compressor.errors import UsageError
from sogs_compressor.layouts import layout_named
from sogs_compressor.splats import SplatSet

if TYPE_CHECKING:
    import torch

    from sogs_compressor.options import CompressOptions

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


def check_level_inputs(options: CompressOptions, count: int) -> None:
    """What ``--lod-input levels`` needs of the command line, checked before anything is read (``UsageError``)."""
    if not layout_named(options.layout).streamed:
        raise UsageError("--lod-input levels writes a Streamed SOG: give --layout lod (or -o .../lod-meta.json)")
    if options.lod_levels is not None or options.lod_min_splats is not None:
        raise UsageError("--lod-levels / --lod-min-splats build levels by decimation; with --lod-input levels the "
                         "inputs are the levels")
    if not 1 <= count <= MAX_LEVELS:
        raise UsageError(f"--lod-input levels takes 1..{MAX_LEVELS} inputs (one per level), not {count}")


def naming_the_file(error: BaseException, path: str | Path) -> BaseException:
    """``error`` (a bad level input's) with the file named in its one line, when it does not say which file: with
    several inputs in one run, "file truncated" alone does not tell which (the exit code stays the error's)."""
    if str(path) not in str(error):
        error.args = (f"{path}: {error}",)
    return error


def check_given_levels(inputs: Sequence[str | Path], levels: list[SplatSet], sh_bands: int | None) -> None:
    """One SH degree (as written) and model across the given levels, and splat counts that never grow."""
    degrees = [level.sh_degree if sh_bands is None else min(level.sh_degree, sh_bands) for level in levels]
    if len(set(degrees)) > 1:
        listed = ", ".join(f"{path} {degree}" for path, degree in zip(inputs, degrees, strict=True))
        raise UsageError(f"the levels have different SH degrees ({listed}): give levels of one degree, or "
                         f"--sh-bands {min(degrees)} to write them all at degree {min(degrees)}")
    models = [level.model for level in levels]
    if len(set(models)) > 1:
        listed = ", ".join(f"{path} {model}" for path, model in zip(inputs, models, strict=True))
        raise UsageError(f"the levels have different rendering models ({listed}): give levels of one model")
    for level in range(1, len(levels)):
        if levels[level].count > levels[level - 1].count:
            raise UsageError(f"level {level} ({inputs[level]}) has {levels[level].count} splats, more than level "
                             f"{level - 1} ({inputs[level - 1]}, {levels[level - 1].count}): give the levels finest "
                             "first")
