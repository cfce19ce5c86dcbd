"""Read a Streamed SOG (``lod-meta.json`` + one SOG per chunk, formats.md 2.11): all levels, or one.

Everything in lod-meta.json is checked before a chunk is opened: JSON types, ``lodLevels``, ``counts`` against the
tree, every leaf's ``{file, offset, count}``, every bound, and chunk paths (relative, inside the folder that holds
lod-meta.json, symlinks included). Each chunk file serves one level, and the ranges that leaves name in it must
tile it exactly: ``[0, n)`` without gaps or overlaps, ``n`` being the chunk's own ``count``, checked when it is
decoded by the SOG reader (with that reader's own limits). A level reads as its chunks in file-id order, as
splat-transform 3.7.0 reads ``-L N``; all levels read as level 0, then 1, and so on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sogs_compressor.errors import CorruptSogError, InputNotFoundError, UsageError
from sogs_compressor.formats import LOD_META_NAME
from sogs_compressor.lod.pyramid import MAX_LEVELS
from sogs_compressor.sog.decode import MAX_TEXELS
from sogs_compressor.sog.meta import FLOAT32_MAX, brief, integer, parse_json_object
from sogs_compressor.splats import COLUMNS, SplatSet

MAX_LOD_META_BYTES = 64 << 20
"""A 100M-splat scene cut into 8K-splat leaves has ~12K leaves, a few MB of JSON; more is refused unread."""
MAX_FILES = 1 << 16
MAX_NODES = 1 << 20
MAX_DEPTH = 64
"""A median-split tree of 2^32 splats is 32 deep; deeper nesting is refused (no recursion, no stack overflow)."""


@dataclass(frozen=True)
class LodRange:
    level: int
    file: int
    offset: int
    count: int


@dataclass
class LodManifest:
    """The checked contents of a lod-meta.json."""

    levels: int
    counts: list[int]
    filenames: list[str]
    ranges: list[LodRange]
    leaves: int
    generator: str | None = None
    file_level: dict[int, int] = field(default_factory=dict)

    def level_files(self, level: int) -> list[int]:
        return sorted(f for f, lvl in self.file_level.items() if lvl == level)


def _fail(message: str) -> CorruptSogError:
    return CorruptSogError(f"{LOD_META_NAME} {message}")


def _integer(value: Any, what: str, low: int, high: int) -> int:
    return integer(value, what, low, high, LOD_META_NAME)


def _corner(value: Any, what: str) -> None:
    if not isinstance(value, list) or len(value) != 3 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and abs(float(v)) <= FLOAT32_MAX for v in value):
        raise _fail(f"{what} is not a list of 3 finite numbers ({brief(value)})")


def _bound(node: dict, where: str) -> None:
    bound = node.get("bound")
    if not isinstance(bound, dict):
        raise _fail(f"{where}.bound is not an object ({brief(bound)})")
    _corner(bound.get("min"), f"{where}.bound.min")
    _corner(bound.get("max"), f"{where}.bound.max")
    if any(float(a) > float(b) for a, b in zip(bound["min"], bound["max"], strict=True)):
        raise _fail(f"{where}.bound has min above max ({brief(bound)})")


def check_chunk_name(name: Any, index: int) -> str:
    """A chunk path as lod-meta.json may give it: a non-empty relative path below its folder (no '..', no
    absolute path, drive, URL or backslash)."""
    if not isinstance(name, str) or not name or len(name) > 4096:
        raise _fail(f"filenames[{index}] is not a file name ({brief(name)})")
    parts = name.split("/")
    if (name.startswith("/") or "\\" in name or ":" in name or "\x00" in name
            or any(part in ("", ".", "..") for part in parts)):
        raise _fail(f"filenames[{index}] {brief(name)} is not a plain relative path inside the scene's folder")
    return name


def parse_lod_meta(raw: bytes) -> LodManifest:
    """The checked manifest; CorruptSogError (exit 17) naming the first thing that is wrong."""
    meta = parse_json_object(raw, LOD_META_NAME, MAX_LOD_META_BYTES)
    if meta.get("version", 1) != 1 or isinstance(meta.get("version"), bool):
        raise _fail(f"has version {brief(meta.get('version'))}; only version 1 (or none) is supported")
    levels = _integer(meta.get("lodLevels"), "lodLevels", 1, MAX_LEVELS)
    level_of_key = {str(level): level for level in range(levels)}
    filenames = meta.get("filenames")
    if not isinstance(filenames, list) or not 1 <= len(filenames) <= MAX_FILES:
        raise _fail(f"filenames is not a list of 1..{MAX_FILES} names ({brief(filenames)})")
    filenames = [check_chunk_name(name, i) for i, name in enumerate(filenames)]
    ranges: list[LodRange] = []
    file_level: dict[int, int] = {}
    leaves = nodes = 0
    pending: list[tuple[Any, str, int]] = [(meta.get("tree"), "tree", 0)]
    while pending:
        node, where, depth = pending.pop()
        nodes += 1
        if nodes > MAX_NODES or depth > MAX_DEPTH:
            raise _fail(f"tree has more than {MAX_NODES} nodes or is deeper than {MAX_DEPTH}")
        if not isinstance(node, dict):
            raise _fail(f"{where} is not an object ({brief(node)})")
        _bound(node, where)
        children, lods = node.get("children"), node.get("lods")
        if (children is None) == (lods is None):
            raise _fail(f"{where} must have either children or lods")
        if children is not None:
            if not isinstance(children, list) or not children:
                raise _fail(f"{where}.children is not a non-empty list ({brief(children)})")
            pending.extend((child, f"{where}.children[{i}]", depth + 1) for i, child in enumerate(children))
            continue
        if not isinstance(lods, dict):
            raise _fail(f"{where}.lods is not an object ({brief(lods)})")
        leaves += 1
        for key, ref in lods.items():
            level = level_of_key.get(key)  # "1", not "01" or a 5,000-digit number int() would refuse to read
            if level is None:
                raise _fail(f"{where}.lods has key {brief(key)}: not a level 0..{levels - 1}")
            if not isinstance(ref, dict):
                raise _fail(f"{where}.lods.{key} is not an object ({brief(ref)})")
            item = LodRange(level, _integer(ref.get("file"), f"{where}.lods.{key}.file", 0, len(filenames) - 1),
                            _integer(ref.get("offset"), f"{where}.lods.{key}.offset", 0, MAX_TEXELS),
                            _integer(ref.get("count"), f"{where}.lods.{key}.count", 0, MAX_TEXELS))
            if item.count == 0:
                continue
            if file_level.setdefault(item.file, level) != level:
                raise _fail(f"file {item.file} ({filenames[item.file]}) holds splats of levels "
                            f"{file_level[item.file]} and {level}: a chunk serves one level")
            ranges.append(item)
    totals = [sum(r.count for r in ranges if r.level == level) for level in range(levels)]
    counts = meta.get("counts", totals)
    if not isinstance(counts, list) or len(counts) != levels:
        raise _fail(f"counts is not a list of {levels} integers ({brief(counts)})")
    for level, (given, found) in enumerate(zip(counts, totals, strict=True)):
        if _integer(given, f"counts[{level}]", 0, MAX_TEXELS * MAX_FILES) != found:
            raise _fail(f"counts[{level}] is {given}, but the tree's leaves hold {found} splats of level {level}")
    for file in file_level:
        _check_tiling(file, filenames[file], [r for r in ranges if r.file == file])
    asset = meta.get("asset")
    generator = asset.get("generator") if isinstance(asset, dict) else None
    return LodManifest(levels, totals, filenames, ranges, leaves,
                       generator if isinstance(generator, str) else None, file_level)


def _check_tiling(file: int, name: str, ranges: list[LodRange]) -> None:
    """The ranges into one file, by offset, must follow each other from 0 without gaps or overlaps."""
    end = 0
    for item in sorted(ranges, key=lambda r: r.offset):
        if item.offset != end:
            what = "overlaps the range before it" if item.offset < end else f"leaves rows {end}..{item.offset - 1} unused"
            raise _fail(f"range {item.offset}+{item.count} of file {file} ({name}) {what}")
        end += item.count
    if end > MAX_TEXELS:
        raise _fail(f"file {file} ({name}) would hold {end} splats, more than a SOG can")


def lod_meta_path(path: str | os.PathLike) -> Path:
    """The lod-meta.json of ``path`` (the file itself, or a folder holding one)."""
    p = Path(path)
    return p / LOD_META_NAME if p.is_dir() else p


def chunk_path(root: Path, name: str) -> Path:
    """``root/name`` if it exists and, symlinks resolved, stays inside ``root``; CorruptSogError otherwise."""
    target = root / name
    try:
        resolved, base = target.resolve(strict=True), root.resolve(strict=True)
    except (OSError, RuntimeError):
        raise CorruptSogError(f"{LOD_META_NAME} names chunk {name}, which is missing") from None
    if not resolved.is_relative_to(base):
        raise CorruptSogError(f"{LOD_META_NAME} names chunk {name}, which leads outside {root}")
    return resolved


def select_level(manifest: LodManifest, lod: int | None) -> list[int]:
    """The levels to read: all, or ``lod`` (negative counts from the coarsest, as splat-transform's ``-L``)."""
    if lod is None:
        return list(range(manifest.levels))
    level = lod + manifest.levels if lod < 0 else lod
    if not 0 <= level < manifest.levels:
        raise UsageError(f"--lod {lod}: the scene has levels 0..{manifest.levels - 1}")
    return [level]


def read_manifest(path: str | os.PathLike) -> LodManifest:
    meta_path = lod_meta_path(path)
    try:
        with open(meta_path, "rb") as f:
            raw = f.read(MAX_LOD_META_BYTES + 1)
    except FileNotFoundError:
        raise InputNotFoundError(f"input not found: {meta_path}") from None
    except OSError as error:
        raise InputNotFoundError(f"cannot read {meta_path}: {error.strerror or error}") from None
    return parse_lod_meta(raw)


def read_lod(path: str | os.PathLike, lod: int | None = None):
    """A Streamed SOG as a ``Scene`` (format ``lod``): all levels in order, or level ``lod``. The header's ``lod``
    says which levels were read and how many splats each level has."""
    from sogs_compressor.read import Scene
    from sogs_compressor.read.sog import read_sog

    meta_path = lod_meta_path(path)
    manifest = read_manifest(meta_path)
    selected = select_level(manifest, lod)
    root = meta_path.parent
    parts: list[SplatSet] = []
    total_bytes = meta_path.stat().st_size
    for level in selected:
        for file in manifest.level_files(level):
            name = manifest.filenames[file]
            chunk = read_sog(chunk_path(root, name))
            expected = sum(r.count for r in manifest.ranges if r.file == file)
            if chunk.splats.count != expected:
                raise CorruptSogError(f"chunk {name} holds {chunk.splats.count} splats; {LOD_META_NAME} gives its "
                                      f"ranges {expected}")
            parts.append(chunk.splats)
            total_bytes += chunk.bytes
    if not parts:
        raise CorruptSogError(f"{LOD_META_NAME}: level {selected[0]} holds no splats")
    degrees = {p.sh_degree for p in parts}
    if len(degrees) > 1:
        raise CorruptSogError(f"the chunks hold different SH degrees ({sorted(degrees)})")
    splats = concatenate(parts)
    header = {"lod": {"levels": manifest.levels, "counts": manifest.counts, "files": len(manifest.file_level),
                      "leaves": manifest.leaves, "selected": selected, "generator": manifest.generator}}
    return Scene(splats=splats, format="lod", path=str(path), bytes=total_bytes, header=header)


def concatenate(parts: list[SplatSet]) -> SplatSet:
    """One splat set of ``parts`` in order (same SH degree)."""
    if len(parts) == 1:
        return parts[0]
    columns = {name: np.concatenate([getattr(p, name) for p in parts]) for name in COLUMNS}
    return SplatSet(**columns, model=parts[0].model)
