"""The input formats, one row each: name, file endings, how its content is recognised, and its reader.

``read.detect_format``, the folder walks (the CLI's output names, the job's scene discovery), ``info`` and the
reports all ask this table; nothing else lists suffixes or format names. Formats are tried in table order and
the first whose ``sniff`` answers yes wins: content decides (magic bytes, the PLY header, meta.json's
``version``), the file ending only says which files a folder walk picks up. Readers are imported when a file is
read, so this table costs nothing to import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sogs_compressor.errors import CorruptSogError, InputNotFoundError, NotAPlyError
from sogs_compressor.formats import LOD_META_NAME, META_NAME

if TYPE_CHECKING:
    from sogs_compressor.read import Scene

HEAD_BYTES = 64
"""How much of a file the sniffs look at (the PLY magic, the ZIP magic, a JSON object's opening brace)."""
PLY_MAGIC = (b"ply\n", b"ply\r\n")
ZIP_MAGIC = b"PK\x03\x04"


class Candidate:
    """A path whose format is being decided: a folder, or a file whose first bytes are read once, when a sniff
    first needs them (a missing or empty file fails there, with the error ``read`` gives for it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is_dir = path.is_dir()

    @cached_property
    def head(self) -> bytes:
        try:
            with open(self.path, "rb") as f:
                head = f.read(HEAD_BYTES)
        except OSError as error:
            raise InputNotFoundError(f"cannot read {self.path}: {error.strerror or error}") from None
        if not head:
            raise NotAPlyError(f"{self.path} is empty")
        return head

    def holds(self, name: str) -> bool:
        """Whether the candidate is a folder holding the file ``name``."""
        return self.is_dir and (self.path / name).is_file()

    @cached_property
    def is_compressed_ply(self) -> bool:
        """Whether the file is a PLY whose header is PlayCanvas's compressed layout (raises for a broken header)."""
        from sogs_compressor.read.ply_header import is_compressed_header, parse_ply_header

        with open(self.path, "rb") as f:
            return is_compressed_header(parse_ply_header(f))

    @property
    def is_ply(self) -> bool:
        return not self.is_dir and self.head.startswith(PLY_MAGIC)

    @property
    def is_json(self) -> bool:
        return not self.is_dir and self.head.lstrip().startswith(b"{")

    @property
    def sog_meta(self) -> Path | None:
        """The meta.json of a SOG folder, or the file itself when it holds a JSON object; else None."""
        if self.is_dir:
            return self.path / META_NAME if self.holds(META_NAME) else None
        return self.path if self.is_json else None


@dataclass(frozen=True)
class InputFormat:
    """One input format. ``suffixes``: file endings a folder walk takes for this format's scenes; ``file_names``:
    whole names that stand for the scene in their folder (its output is named after the folder); ``levels``:
    whether it holds levels of detail (``read --lod N`` picks one)."""

    name: str
    description: str
    suffixes: tuple[str, ...]
    file_names: tuple[str, ...]
    sniff: Callable[[Candidate], bool]
    read: Callable[[str | os.PathLike, int | None], Scene]
    levels: bool = False


def _is_v1_meta(meta_path: Path) -> bool:
    """A sogs 1.x meta.json: no ``version``, and ``means`` an object; a broken meta is left to the SOG reader."""
    from sogs_compressor.sog.meta import MAX_META_BYTES, parse_meta

    try:
        if meta_path.stat().st_size > MAX_META_BYTES:
            return False
        meta = parse_meta(meta_path.read_bytes())
    except (OSError, CorruptSogError):
        return False
    return "version" not in meta and isinstance(meta.get("means"), dict)


def _sniff_lod(candidate: Candidate) -> bool:
    # the name decides, as in the engine and splat-transform; a folder holding a meta.json is a SOG folder
    if candidate.is_dir:
        return candidate.holds(LOD_META_NAME) and not candidate.holds(META_NAME)
    return candidate.path.name.lower() == LOD_META_NAME


def _sniff_ply(candidate: Candidate) -> bool:
    return candidate.is_ply and not candidate.is_compressed_ply


def _sniff_compressed_ply(candidate: Candidate) -> bool:
    return candidate.is_ply and candidate.is_compressed_ply


def _sniff_sog_v1(candidate: Candidate) -> bool:
    meta = candidate.sog_meta
    return meta is not None and _is_v1_meta(meta)


def _sniff_sog(candidate: Candidate) -> bool:
    if candidate.is_dir:
        return candidate.holds(META_NAME)
    return candidate.head.startswith(ZIP_MAGIC) or candidate.is_json


def _read_lod(path: str | os.PathLike, lod: int | None) -> Scene:
    from sogs_compressor.read.lod import read_lod

    return read_lod(path, lod)


def _read_compressed_ply(path: str | os.PathLike, _lod: int | None) -> Scene:
    from sogs_compressor.read.compressed_ply import read_compressed_ply

    return read_compressed_ply(path)


def _read_ply(path: str | os.PathLike, _lod: int | None) -> Scene:
    from sogs_compressor.read.ply import read_ply

    return read_ply(path)


def _read_sog(path: str | os.PathLike, _lod: int | None) -> Scene:
    from sogs_compressor.read.sog import read_sog

    return read_sog(path)


INPUT_FORMATS = (
    InputFormat("lod", "Streamed SOG", (), (LOD_META_NAME,), _sniff_lod, _read_lod, levels=True),
    InputFormat("ply", "PLY", (".ply",), (), _sniff_ply, _read_ply),
    InputFormat("compressed_ply", "compressed PLY", (".compressed.ply",), (), _sniff_compressed_ply,
                _read_compressed_ply),
    InputFormat("sog_v1", "SOG v1 (sogs 1.x meta.json)", (), (META_NAME,), _sniff_sog_v1, _read_sog),
    InputFormat("sog", "SOG", (".sog",), (META_NAME,), _sniff_sog, _read_sog),
)
"""Every input format, in the order their sniffs are tried."""


def format_named(name: str) -> InputFormat:
    """The format of this name (``Scene.format``, ``detect_format``); KeyError for an unknown one."""
    for input_format in INPUT_FORMATS:
        if input_format.name == name:
            return input_format
    raise KeyError(name)


def sniff_format(path: Path) -> InputFormat:
    """The first format whose sniff recognises ``path`` (an existing file or folder); NotAPlyError for none."""
    candidate = Candidate(path)
    for input_format in INPUT_FORMATS:
        if input_format.sniff(candidate):
            return input_format
    if candidate.is_dir:
        raise NotAPlyError(f"{path} is a folder without a {META_NAME} or {LOD_META_NAME} (not a SOG folder)")
    *others, last = [f.description for f in INPUT_FORMATS if f.suffixes]
    raise NotAPlyError(f"{path} is not a {', '.join(others)} or {last} file (unrecognised first bytes "
                       f"{candidate.head[:8]!r})")


def scene_suffixes() -> tuple[str, ...]:
    """Every file ending of a scene a folder walk picks up, longest first (``.compressed.ply`` before ``.ply``)."""
    return tuple(sorted((s for f in INPUT_FORMATS for s in f.suffixes), key=len, reverse=True))


def scene_file_names() -> tuple[str, ...]:
    """Whole file names that stand for the scene in their folder (``meta.json``, ``lod-meta.json``)."""
    return tuple(dict.fromkeys(name for f in INPUT_FORMATS for name in f.file_names))


def scene_stem(name: str) -> str | None:
    """``name`` without its scene ending (any letter case), or None for a file no folder walk takes as a scene."""
    lower = name.lower()
    for suffix in scene_suffixes():
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def suffix_list() -> str:
    """The scene endings for help and messages: ``.ply, .compressed.ply, .sog``."""
    return ", ".join(s for f in INPUT_FORMATS for s in f.suffixes)
