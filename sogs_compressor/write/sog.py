"""Write a SOG to disk as a ``.sog`` bundle, a folder (meta.json + WebP files), or both — atomically.

Every file is written under a temporary name in its final folder and renamed into place, and ``meta.json`` is
renamed last: an interrupted run never leaves a file (or folder) that looks complete.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sogs_compressor import inflight
from sogs_compressor.errors import OutputError
from sogs_compressor.result import OutputFile
from sogs_compressor.sog.meta import meta_bytes, texture_names

ZIP_LIMIT = 2**32 - 1


def bundle_bytes_layout(meta: dict, webps: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """Entries of the bundle in splat-transform's order: textures as listed in meta, meta.json last."""
    entries = [(name, webps[name]) for name in texture_names(meta)]
    entries.append(("meta.json", meta_bytes(meta)))
    return entries


def write_bundle(path: Path, meta: dict, webps: dict[str, bytes]) -> OutputFile:
    """One ``.sog`` zip: stored (not deflated) entries at the root, no comment, no zip64."""
    entries = bundle_bytes_layout(meta, webps)
    total = sum(len(data) + 200 for _, data in entries)
    if total >= ZIP_LIMIT:
        raise OutputError(f"{path.name}: {total} bytes is over the {ZIP_LIMIT} bytes a .sog bundle may hold (use --layout dir)")

    def fill(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=False) as archive:
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)

    _atomic_write(path, fill)
    return OutputFile(path=str(path), bytes=path.stat().st_size, role="bundle")


def write_directory(folder: Path, meta: dict, webps: dict[str, bytes]) -> list[OutputFile]:
    """``meta.json`` + WebP files in ``folder``; an old meta.json is removed first, the new one renamed in last."""
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "meta.json"
    meta_path.unlink(missing_ok=True)
    written = []
    for name in texture_names(meta):
        target = folder / name
        _atomic_write(target, lambda tmp, data=webps[name]: tmp.write_bytes(data))
        written.append(OutputFile(path=str(target), bytes=target.stat().st_size, role="texture"))
    _atomic_write(meta_path, lambda tmp: tmp.write_bytes(meta_bytes(meta)))
    written.append(OutputFile(path=str(meta_path), bytes=meta_path.stat().st_size, role="meta"))
    return written


@dataclass(frozen=True)
class SogPlacement:
    """Where a scene's SOG goes: the ``.sog`` bundle file and the folder of the folder layout (meta.json and
    textures). The layout decides which of the two is written."""

    bundle: Path
    folder: Path

    @classmethod
    def beside(cls, output_dir: Path, name: str) -> SogPlacement:
        """The default: ``output_dir/name.sog`` and the folder layout in ``output_dir`` itself."""
        return cls(Path(output_dir) / f"{name}.sog", Path(output_dir))


def output_paths(output_dir: Path, name: str, layout: str, meta: dict,
                 placement: SogPlacement | None = None) -> list[Path]:
    """The files ``write_sog`` writes for these arguments (the folder layout's textures and meta.json, the
    bundle)."""
    placement = placement or SogPlacement.beside(output_dir, name)
    paths = []
    if layout in ("dir", "both"):
        paths.extend(placement.folder / file for file in [*texture_names(meta), "meta.json"])
    if layout in ("bundle", "both"):
        paths.append(placement.bundle)
    return paths


def write_sog(output_dir: Path, name: str, layout: str, meta: dict, webps: dict[str, bytes],
              placement: SogPlacement | None = None) -> list[OutputFile]:
    """Write ``name.sog`` and/or ``meta.json`` + textures into ``output_dir`` according to ``layout``
    (elsewhere when ``placement`` says so)."""
    placement = placement or SogPlacement.beside(output_dir, name)
    where = placement.folder
    try:
        files: list[OutputFile] = []
        if layout in ("dir", "both"):
            placement.folder.mkdir(parents=True, exist_ok=True)
            files.extend(write_directory(placement.folder, meta, webps))
        if layout in ("bundle", "both"):
            where = placement.bundle.parent
            where.mkdir(parents=True, exist_ok=True)
            files.append(write_bundle(placement.bundle, meta, webps))
        return files
    except OSError as error:
        raise OutputError(f"cannot write to {where}: {error.strerror or error}") from None


def _atomic_write(path: Path, fill) -> None:
    """Let ``fill(tmp_path)`` write a temp file beside ``path``, fsync it, then rename it over ``path``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    inflight.add(tmp)  # a forced exit mid-write removes it
    try:
        fill(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        inflight.discard(tmp)
