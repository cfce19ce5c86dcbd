"""Where a SOG's files come from: a ``.sog`` bundle (ZIP), or a meta.json and the folder it sits in.

A file is read as what it is: one that starts like a ZIP is a bundle (and a damaged bundle is a corrupt SOG,
never a reason to look at the folder around it); any other file is the meta.json itself. Every read has a byte
limit the caller derives from the scene, checked against the declared or on-disk size before reading and enforced
while reading, so an entry that inflates to a gigabyte, or lies about its size, costs at most the limit.
"""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from pathlib import Path

from sogs_compressor.errors import CorruptSogError, InputNotFoundError

ZIP_MAGIC = b"PK\x03\x04"

_ZIP_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError,
    OverflowError,
)
"""What zipfile raises for damaged archives (bad structures, CRC and inflate errors, impossible offsets)."""


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__


class BundleSource:
    """The entries of a ``.sog`` ZIP: stored or deflated, unencrypted, each read with a cap."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.archive = zipfile.ZipFile(path)
        except _ZIP_ERRORS as error:
            raise CorruptSogError(f"{path.name}: not a readable .sog bundle ({_reason(error)})") from None
        self.bytes = path.stat().st_size

    def read_meta(self, limit: int) -> bytes:
        return self.read("meta.json", limit)

    def read(self, name: str, limit: int) -> bytes:
        """The entry's bytes; CorruptSogError if it is missing, unreadable or larger than ``limit``."""
        where = f"{self.path.name}: entry {name!r}"
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise CorruptSogError(f"{self.path.name}: the bundle has no entry {name!r}") from None
        if info.flag_bits & 0x1:
            raise CorruptSogError(f"{where} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CorruptSogError(f"{where} uses ZIP method {info.compress_type}; SOG bundles use stored or deflate")
        if info.file_size > limit:
            raise CorruptSogError(f"{where} declares {info.file_size} bytes; this scene needs at most {limit}")
        try:
            with self.archive.open(info) as stream:
                data = stream.read(limit + 1)  # the cap holds even if the declared size lies
        except _ZIP_ERRORS as error:
            raise CorruptSogError(f"{where} cannot be read ({_reason(error)})") from None
        if len(data) > limit:
            raise CorruptSogError(f"{where} inflates past {limit} bytes, more than this scene needs")
        return data

    def close(self) -> None:
        self.archive.close()


class FolderSource:
    """A meta.json file and the textures beside it, which it names by bare file name."""

    def __init__(self, meta: Path) -> None:
        self.meta = meta
        self.folder = meta.parent
        self.bytes = 0
        """Bytes of the files read so far (the meta.json and the textures it names)."""

    def read_meta(self, limit: int) -> bytes:
        return self._read_file(self.meta, limit, f"{self.meta}: no such file")

    def read(self, name: str, limit: int) -> bytes:
        """The named file's bytes; CorruptSogError if the name leaves the folder, or the file is missing or large."""
        if name in (".", "..") or any(c in name for c in "/\\\0"):
            raise CorruptSogError(f"meta.json names a file outside its folder: {name!r}")
        return self._read_file(self.folder / name, limit, f"{self.folder}: missing file {name!r} named in meta.json")

    def _read_file(self, path: Path, limit: int, missing: str) -> bytes:
        try:
            info = path.stat()
        except (OSError, ValueError):
            raise CorruptSogError(missing) from None
        if not stat.S_ISREG(info.st_mode):
            raise CorruptSogError(f"{path}: not a regular file")
        if info.st_size > limit:
            raise CorruptSogError(f"{path} is {info.st_size} bytes; this scene needs at most {limit}")
        try:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except OSError as error:
            raise InputNotFoundError(f"cannot read {path}: {error.strerror or error}") from None
        if len(data) > limit:
            raise CorruptSogError(f"{path} grew past {limit} bytes while being read")
        self.bytes += len(data)
        return data

    def close(self) -> None:
        """Nothing stays open between reads."""


def open_source(path: str | os.PathLike) -> BundleSource | FolderSource:
    """The source a path names: a folder (its meta.json), a ZIP file (a bundle) or any other file (a meta.json)."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return FolderSource(path / "meta.json")
    try:
        with open(path, "rb") as f:
            head = f.read(len(ZIP_MAGIC))
    except OSError as error:
        raise InputNotFoundError(f"cannot read {path}: {error.strerror or error}") from None
    if head == ZIP_MAGIC:
        return BundleSource(path)
    return FolderSource(path)
