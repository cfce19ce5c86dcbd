"""S3 as a ``Storage``: keys below one prefix of one bucket, through ``fetch.s3.S3Manager``.

The manager does the work (boto3's retries, s3transfer's multipart and temporary download names, the size
check of a download, the clean-up of orphaned multipart uploads, one-line ``StorageError``s); this class only
turns keys below the prefix into URIs. Keys are used as they are: a key holding ``//`` or ``..`` names that very
object (S3 keys are plain strings); the job checks keys before one becomes a local name or an output folder
(``fetch.paths.key_parts``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sogs_compressor.fetch.paths import relative_key
from sogs_compressor.fetch.uri import S3Uri
from sogs_compressor.fetch.waiting import StopCheck
from sogs_compressor.storage.base import Listing, StoredObject

if TYPE_CHECKING:  # boto3 is imported only once a job talks to S3
    from sogs_compressor.fetch.s3 import S3Manager


class S3Storage:
    """Objects below ``root`` (a prefix). Every call gives up with ``Interrupted`` as soon as ``should_stop``
    says so, a transfer in flight included."""

    remote = True

    def __init__(self, manager: S3Manager, root: S3Uri, should_stop: StopCheck = None) -> None:
        self.manager = manager
        self.root = root.as_prefix()
        self.should_stop = should_stop

    def _uri(self, key: str) -> S3Uri:
        return S3Uri(self.root.bucket, self.root.key + key)

    def _relative(self, key: str) -> str:
        return relative_key(key, self.root.key)

    def describe(self, key: str = "") -> str:
        return str(self._uri(key))

    def list(self, prefix: str = "") -> list[StoredObject]:
        """In key order (S3's own: its keys sort as their UTF-8 bytes, which is Python's order of the text)."""
        found = self.manager.list_objects(self._uri(prefix).as_prefix(), self.should_stop)
        return sorted((StoredObject(self._relative(o.key), o.size) for o in found), key=lambda o: o.key)

    def list_level(self, prefix: str = "") -> Listing:
        objects, folders = self.manager.list_level(self._uri(prefix).as_prefix(), self.should_stop)
        return [StoredObject(self._relative(o.key), o.size) for o in objects], folders

    def head(self, key: str) -> StoredObject | None:
        size = self.manager.head(self._uri(key), self.should_stop)
        return None if size is None else StoredObject(key, size)

    def read(self, key: str, max_bytes: int) -> bytes | None:
        return self.manager.read_small(self._uri(key), max_bytes, self.should_stop)

    def download(self, key: str, path: Path, expected_size: int | None = None) -> None:
        self.manager.download_file(self._uri(key), path, expected_size, self.should_stop)

    def upload(self, path: Path, key: str, consume: bool = False) -> None:
        self.manager.upload_file(path, self._uri(key), self.should_stop)

    def delete(self, key: str) -> None:
        self.manager.delete(self._uri(key), self.should_stop)

    def local_file(self, key: str) -> Path | None:
        return None
