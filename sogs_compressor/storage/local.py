"""The local disk as a ``Storage``: keys are paths below a root folder.

Listing follows what the job has always taken from a folder: hidden entries (``.DS_Store``, the job's own
``.sogs-staging``) and links leading outside the root are no objects of ``list``. ``list_level`` shows every
entry, hidden ones and links included, because promotion must see everything it might replace. No key reaches
outside the root, and nothing is written through a link that leads out of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from sogs_compressor.errors import OutputError, StorageError
from sogs_compressor.storage.base import Listing, StoredObject, join_key


class LocalStorage:
    """Files below ``root``; writes are a rename or a copy to a temporary name and a rename, never a half file
    under the real name."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        parts = key.split("/") if key else []
        if key.startswith("/") or "\x00" in key or any(part in ("", ".", "..") for part in parts):
            raise OutputError(f"refusing to reach outside {self.root}: {key!r}")
        return self.root.joinpath(*parts)

    def _writable(self, key: str) -> Path:
        path = self._path(key)
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise OutputError(f"refusing to write outside the output folder: {path}")
        return path

    def describe(self, key: str = "") -> str:
        return str(self._path(key))

    def list(self, prefix: str = "") -> list[StoredObject]:
        """Folder by folder, each folder's files (sorted) before its subfolders (sorted)."""
        top, real_root = self._path(prefix), self.root.resolve()
        found = []
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if name.startswith(".") or not path.is_file():
                    continue
                if path.is_symlink() and not path.resolve().is_relative_to(real_root):
                    continue
                with contextlib.suppress(OSError):  # gone since the walk saw it: not there
                    found.append(StoredObject(path.relative_to(self.root).as_posix(), path.stat().st_size))
        return found

    def list_level(self, prefix: str = "") -> Listing:
        objects, folders = [], []
        try:
            with os.scandir(self._path(prefix)) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.name)
                    else:
                        size = entry.stat(follow_symlinks=False).st_size
                        objects.append(StoredObject(join_key(prefix, entry.name), size))
        except (FileNotFoundError, NotADirectoryError):
            pass
        return sorted(objects, key=lambda o: o.key), sorted(folders)

    def head(self, key: str) -> StoredObject | None:
        path = self._path(key)
        if not path.is_file():
            return None
        return StoredObject(key, path.stat().st_size)

    def read(self, key: str, max_bytes: int) -> bytes | None:
        found = self.head(key)
        if found is None or found.size > max_bytes:
            return None
        with open(self._path(key), "rb") as file:
            return file.read(max_bytes)

    def download(self, key: str, path: Path, expected_size: int | None = None) -> None:
        source = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name[:32]}.", dir=path.parent)
        os.close(handle)
        try:
            shutil.copyfile(source, temporary)
            size = os.path.getsize(temporary)
            if expected_size is not None and size != expected_size:
                raise StorageError(f"copy of {source} failed: got {size} bytes, the listing said {expected_size} "
                                   "(file changed while the job ran?)")
            os.replace(temporary, path)
        finally:
            Path(temporary).unlink(missing_ok=True)

    def upload(self, path: Path, key: str, consume: bool = False) -> None:
        target = self._writable(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if consume:
            os.replace(path, target)
            return
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name[:32]}.", dir=target.parent)
        os.close(handle)
        try:
            shutil.copyfile(path, temporary)
            os.replace(temporary, target)
        finally:
            Path(temporary).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        """Remove the file, then the folders above it that this left empty (up to the root): on a disk, as in
        S3, a folder lasts only as long as something is in it."""
        path = self._writable(key)
        path.unlink(missing_ok=True)
        root = self.root.resolve()
        folder = path.parent
        while folder.resolve() != root and folder.resolve().is_relative_to(root):
            try:
                folder.rmdir()
            except OSError:  # not empty (or not ours to remove): the folders above are not empty either
                return
            folder = folder.parent

    def local_file(self, key: str) -> Path | None:
        return self._path(key)
