"""Write a Streamed SOG: one ordinary SOG v2 folder per chunk (``L_I/meta.json`` + WebP files), then
``lod-meta.json`` (formats.md 2.11).

``lod-meta.json`` is what splat-transform 3.7.0 writes and the PlayCanvas engine 2.23 reads: ``version`` 1,
``asset`` (generator and the chunking settings), ``count`` (all levels), ``counts`` (per level), ``lodLevels``,
``filenames`` (chunk paths relative to it; index = file id) and ``tree`` (nodes with ``bound`` {min, max} and
``children``, leaves with ``lods`` {"level": {file, offset, count}}). It is written last, under a temporary name
renamed into place: a folder without it is an interrupted run, never a scene that looks complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sogs_compressor.errors import OutputError
from sogs_compressor.formats import LOD_META_NAME, chunk_contents, is_chunk_folder
from sogs_compressor.lod.chunks import Partition
from sogs_compressor.result import OutputFile
from sogs_compressor.sog.meta import GENERATOR
from sogs_compressor.write.sog import _atomic_write, write_sog

FORMAT_VERSION = 1
"""The ``version`` splat-transform 3.7.0 writes and reads (a missing one reads as a pre-versioning manifest)."""


def lod_meta(partition: Partition, chunking: dict) -> dict:
    """The lod-meta.json object for ``partition``; ``chunking``: {count, extent, min} as given (K, units, K)."""
    levels = 1 + max(f.level for f in partition.files)
    counts = [sum(int(f.rows.size) for f in partition.level_files(level)) for level in range(levels)]
    return {
        "version": FORMAT_VERSION,
        "asset": {"generator": GENERATOR, "chunkGaussians": chunking["count"] * 1024,
                  "chunkExtent": chunking["extent"], "chunkMinGaussians": chunking["min"] * 1024},
        "count": sum(counts),
        "counts": counts,
        "lodLevels": levels,
        "filenames": [f.name for f in partition.files],
        "tree": partition.tree,
    }


def lod_meta_bytes(meta: dict) -> bytes:
    """Compact JSON, as splat-transform writes it; NaN/Infinity refused (browsers cannot parse them)."""
    return json.dumps(meta, separators=(",", ":"), allow_nan=False).encode("utf-8")


def write_chunk(output_dir: Path, name: str, meta: dict, webps: dict[str, bytes]) -> list[OutputFile]:
    """Chunk ``name`` (``L_I/meta.json``) as a SOG folder under ``output_dir``."""
    return write_sog(Path(output_dir) / Path(name).parent, "meta", "dir", meta, webps)


def write_lod_meta(output_dir: Path, meta: dict) -> OutputFile:
    """``output_dir/lod-meta.json``, atomically (the last file of a Streamed SOG)."""
    path = Path(output_dir) / LOD_META_NAME
    data = lod_meta_bytes(meta)
    try:
        _atomic_write(path, lambda tmp: tmp.write_bytes(data))
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    return OutputFile(path=str(path), bytes=path.stat().st_size, role="lod-meta")


def remove_stale_chunks(output_dir: Path, keep: set[str]) -> list[str]:
    """Remove the chunk folders of an earlier Streamed SOG in ``output_dir`` that the new lod-meta.json does not
    name (``keep``): a rerun with fewer chunks would otherwise leave them beside it, to be uploaded with it. Only
    a folder named as the writer names chunks that holds nothing but a SOG folder's files goes (the job's rule,
    ``job/promote.py``): anything else there is somebody else's. Called after lod-meta.json is written, so a
    viewer never sees it name a chunk being removed. The names removed, sorted."""
    removed = []
    for child in sorted(output_dir.iterdir()):
        if not child.is_dir() or child.is_symlink() or not is_chunk_folder(child.name) or child.name in keep:
            continue
        entries = list(child.iterdir())
        plain = [e.name for e in entries if e.is_file() and not e.is_symlink()]
        if chunk_contents(plain, has_subfolders=len(plain) < len(entries)) is not None:  # links count as folders
            shutil.rmtree(child)
            removed.append(child.name)
    return removed
