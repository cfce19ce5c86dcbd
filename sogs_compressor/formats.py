"""The file names of the SOG layouts and the Streamed SOG's chunk folders, for the readers, the writers and the job;
which input formats there are, and their file endings, is the table in ``read/registry.py``."""

from __future__ import annotations

import re

BUNDLE_SUFFIX = ".sog"
"""A SOG bundle: the zip of meta.json and the textures."""
META_NAME = "meta.json"
"""A SOG's folder layout: this file beside its textures."""
LOD_META_NAME = "lod-meta.json"
"""A Streamed SOG: this file and its chunk folders."""
CHUNK_FOLDER = re.compile(r"[0-9]+_[0-9]+")
"""The name of a Streamed SOG's chunk folder: ``L_I`` (level, file index), as ``lod.chunks.ChunkFile.name``."""


def is_chunk_folder(name: str) -> bool:
    return CHUNK_FOLDER.fullmatch(name) is not None


def is_sog_folder_file(name: str) -> bool:
    """A file a SOG folder (a chunk) holds: its ``meta.json`` and WebP textures."""
    return name == META_NAME or name.endswith(".webp")


def chunk_contents(files: list[str], has_subfolders: bool) -> set[str] | None:
    """A chunk-named folder's files when it is a plain SOG folder (only a SOG folder's files, no subfolder), else
    None: the one rule by which the job and the writer tell a chunk folder from somebody else's folder."""
    if has_subfolders or not all(is_sog_folder_file(name) for name in files):
        return None
    return set(files)
