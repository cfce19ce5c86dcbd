"""Scene readers: one entry point (``read_scene``) for every input format, chosen by content, not by name.

Formats: standard 3DGS PLY (binary LE/BE and ascii), PlayCanvas compressed PLY, SOG v2 (``.sog`` bundle,
``meta.json`` or a folder holding one), SOG v1 (meta.json without ``version``) and Streamed SOG (``lod-meta.json``
or a folder holding one: all levels, or one with ``lod``). Readers are imported lazily so
that importing this package stays cheap and the SOG reader may live in its own module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sogs_compressor.errors import (
    CorruptSogError,
    InputNotFoundError,
    NotAPlyError,
    UnsupportedFormatError,
    UsageError,
)
from sogs_compressor.formats import LOD_META_NAME
from sogs_compressor.splats import SplatSet

_ZIP_MAGIC = b"PK\x03\x04"


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


def _sog_meta_format(meta_path: Path) -> str:
    """``sog`` or ``sog_v1`` from a meta.json (v1 has no ``version``); a broken meta is left to the SOG reader."""
    from sogs_compressor.sog.meta import MAX_META_BYTES, parse_meta

    try:
        if meta_path.stat().st_size > MAX_META_BYTES:
            return "sog"
        meta = parse_meta(meta_path.read_bytes())
    except (OSError, CorruptSogError):
        return "sog"
    if "version" not in meta and isinstance(meta.get("means"), dict):
        return "sog_v1"
    return "sog"


def _ply_format(path: Path) -> str:
    """``ply`` or ``compressed_ply`` from the header (raises for a broken header)."""
    from sogs_compressor.read.ply_header import is_compressed_header, parse_ply_header

    with open(path, "rb") as f:
        header = parse_ply_header(f)
    return "compressed_ply" if is_compressed_header(header) else "ply"


def detect_format(path: str | os.PathLike) -> str:
    """One of ``formats.INPUT_FORMATS``, decided by the file's content (magic bytes, header), not only its extension."""
    p = input_path(path)
    if p.is_dir():
        meta = p / "meta.json"
        if meta.is_file():
            return _sog_meta_format(meta)
        if (p / LOD_META_NAME).is_file():
            return "lod"
        raise NotAPlyError(f"{p} is a folder without a meta.json or lod-meta.json (not a SOG folder)")
    if p.name.lower() == LOD_META_NAME:  # the name decides, as in the engine and splat-transform
        return "lod"
    try:
        with open(p, "rb") as f:
            head = f.read(64)
    except OSError as error:
        raise InputNotFoundError(f"cannot read {p}: {error.strerror or error}") from None
    if not head:
        raise NotAPlyError(f"{p} is empty")
    if head.startswith((b"ply\n", b"ply\r\n")):
        return _ply_format(p)
    if head.startswith(_ZIP_MAGIC):
        return "sog"
    if head.lstrip().startswith(b"{"):
        return _sog_meta_format(p)
    raise NotAPlyError(f"{p} is not a PLY, compressed PLY or SOG file (unrecognised first bytes {head[:8]!r})")


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
    fmt = detect_format(path)
    if fmt == "lod":
        from sogs_compressor.read.lod import read_lod

        return read_lod(path, lod)
    if lod is not None:
        raise UsageError(f"--lod {lod}: {path} is not a Streamed SOG (lod-meta.json); it has one level")
    if fmt == "ply":
        from sogs_compressor.read.ply import read_ply

        return read_ply(path)
    if fmt == "compressed_ply":
        from sogs_compressor.read.compressed_ply import read_compressed_ply

        return read_compressed_ply(path)
    try:
        from sogs_compressor.read.sog import read_sog
    except ModuleNotFoundError as error:
        if error.name != "sogs_compressor.read.sog":
            raise
        raise UnsupportedFormatError(f"{path}: SOG input is not supported by this build") from None
    return read_sog(path)


def one_level(path: str | os.PathLike) -> int | None:
    """The level to read when a scene is worked on as one set of splats: 0 for a Streamed SOG (its coarser levels
    only repeat level 0's detail), None (the whole file) for any other format."""
    return 0 if detect_format(path) == "lod" else None


def read_one_level(path: str | os.PathLike) -> Scene:
    """A scene to work on as one set of splats (compress, decimate, render): ``one_level``'s level."""
    return read_scene(path, one_level(path))


def _finite_bbox(positions: np.ndarray) -> tuple[list[float] | None, list[float] | None]:
    """Per-axis min/max over splats whose position is finite (None when there are none)."""
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
