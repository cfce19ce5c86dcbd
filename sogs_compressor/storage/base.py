"""The storage interface the job talks to: a flat space of ``/``-separated keys below one root.

Keys are relative to the storage's root (a local folder, an S3 prefix), never absolute; ``""`` is the root
itself when a folder is meant. The interface is what the job needs and no more: sizes but no ETags or times
(the job checks outputs by size, and by sha256 where the bytes are on this machine: ``local_file``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class StoredObject:
    """One object: its key below the storage's root and its size in bytes."""

    key: str
    size: int


Listing = tuple[list[StoredObject], list[str]]
"""One level of a folder: its objects, and the names of its subfolders (named once, before a class's ``list``
method would hide the builtin in annotations)."""


def join_key(folder: str, name: str) -> str:
    """``name`` inside ``folder`` (``""`` being the root)."""
    return f"{folder}/{name}" if folder else name


class Storage(Protocol):
    """List, look at, read, fetch, put and remove objects below one root.

    ``remote`` tells whether objects live elsewhere: the job downloads a remote input's scenes and lists and
    shards its keys itself, while a local input's files are read where they are (on SageMaker the platform has
    already given this host its share of them).
    """

    remote: bool

    def describe(self, key: str = "") -> str:
        """The location of ``key`` as people know it (a path, an ``s3://`` URI), for reports and messages."""
        ...

    def list(self, prefix: str = "") -> list[StoredObject]:
        """Every object below the folder ``prefix``, at any depth, in a stable order."""
        ...

    def list_level(self, prefix: str = "") -> Listing:
        """The objects directly in the folder ``prefix``, and the names of its subfolders; what the subfolders
        hold is not listed (a scene's folder may hold other scenes' folders, of any size)."""
        ...

    def head(self, key: str) -> StoredObject | None:
        """The object ``key``, or None when there is none."""
        ...

    def read(self, key: str, max_bytes: int) -> bytes | None:
        """The bytes of a small object (a report, a marker, ``lod-meta.json``); None when it does not exist or
        is larger than ``max_bytes``: a reader never holds more than it asked for."""
        ...

    def download(self, key: str, path: Path, expected_size: int | None = None) -> None:
        """Copy an object to the local file ``path``, complete or not at all; ``StorageError`` when the copy is
        not ``expected_size`` bytes (the object changed since it was listed)."""
        ...

    def upload(self, path: Path, key: str, consume: bool = False) -> None:
        """Store the local file ``path`` as ``key``, replacing what was there. ``consume``: the caller no longer
        needs ``path``, so a back end on the same disk may move it instead of copying."""
        ...

    def delete(self, key: str) -> None:
        """Remove one object; removing a missing one is no error."""
        ...

    def local_file(self, key: str) -> Path | None:
        """Where the object's file is on this machine, for a store that is this machine's disk (the file may have
        gone since it was listed: the reader finds out); None for a remote store, whose objects must be
        downloaded."""
        ...
