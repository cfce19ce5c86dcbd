"""Scene readers: one entry point (``read_scene``) for every input format, chosen by content, not by name.

Formats: standard 3DGS PLY (binary LE/BE and ascii), PlayCanvas compressed PLY, SOG v2 (``.sog`` bundle,
``meta.json`` or a folder holding one), SOG v1 (meta.json without ``version``) and Streamed SOG (``lod-meta.json``
or a folder holding one: all levels, or one with ``lod``). Which format a file is, and its reader, come from the
table in ``read/registry.py``; readers are imported when used, so importing this package stays cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sogs_compressor.errors import InputNotFoundError, UsageError
from sogs_compressor.read.registry import sniff_format

if TYPE_CHECKING:  # numpy loads with the readers: the command line reads the format table before any scene
    import numpy as np

    from sogs_compressor.splats import SplatSet


@dataclass
class Scene:
    """A scene as read from disk: the splats plus what we know about the file they came from."""

    splats: SplatSet
    format: str
    path: str
    bytes: int
    header: dict = field(default_factory=dict)


def input_path(path: str | os.PathLike) -> Path:
    """The path as a Path, or InputNotFoundError when nothing is there."""
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"input not found: {p}")
    return p


def detect_format(path: str | os.PathLike) -> str:
    """The name of the input format (``read.registry``) that the file's content (magic bytes, header) shows, not
    only its extension."""
    return sniff_format(input_path(path)).name


def check_input(path: str | os.PathLike) -> None:
    """Raise what reading ``path`` would raise for a missing file, an unknown format, or a standard binary PLY
    whose header is unusable or whose size does not match it; reads only the header (milliseconds).

    The command line calls it before importing torch (``prefetch``), so such input fails at once whatever the load
    on the machine; anything it lets through is still checked in full by ``read_scene``."""
    if detect_format(path) != "ply":
        return
    from sogs_compressor.read.ply import binary_offsets, open_input, vertex_element
    from sogs_compressor.read.ply_header import parse_ply_header

    _, f, size = open_input(path)
    with f:
        header = parse_ply_header(f)
    vertex_element(header)
    if header.byte_order is not None:
        binary_offsets(header, size)


def read_scene(path: str | os.PathLike, lod: int | None = None) -> Scene:
    """Read any supported scene file; raises a SogsError subclass (one clear line) for anything unusable.
    ``lod``: of a Streamed SOG, only this level (negative: from the coarsest); other inputs refuse it."""
    input_format = sniff_format(input_path(path))
    if lod is not None and not input_format.levels:
        raise UsageError(f"--lod {lod}: {path} is not a Streamed SOG (lod-meta.json); it has one level")
    return input_format.read(path, lod)


def read_one_level(path: str | os.PathLike) -> Scene:
    """A scene to work on as one set of splats (compress, decimate, render): level 0 of a Streamed SOG (its coarser
    levels only repeat level 0's detail), the whole file of any other format. The format is sniffed once."""
    input_format = sniff_format(input_path(path))
    return input_format.read(path, 0 if input_format.levels else None)


def _finite_bbox(positions: np.ndarray) -> tuple[list[float] | None, list[float] | None]:
    """Per-axis min/max over splats whose position is finite (None when there are none)."""
    import numpy as np

    finite = np.isfinite(positions).all(axis=1)
    if not finite.any():
        return None, None
    kept = positions[finite] if not finite.all() else positions
    return [float(v) for v in kept.min(axis=0)], [float(v) for v in kept.max(axis=0)]


def describe_scene(path: str | os.PathLike, lod: int | None = None) -> dict:
    """JSON-safe facts about a scene for ``sogs-compressor info`` (a Streamed SOG's: also its levels)."""
    scene = read_scene(path, lod)
    splats = scene.splats
    bbox_min, bbox_max = _finite_bbox(splats.positions)
    return {
        "path": scene.path,
        "format": scene.format,
        "count": splats.count,
        "sh_degree": splats.sh_degree,
        "model": splats.model,
        "bbox_min": bbox_min,
        "bbox_max": bbox_max,
        "bytes": int(scene.bytes),
        **({"lod": scene.header["lod"]} if "lod" in scene.header else {}),
    }
