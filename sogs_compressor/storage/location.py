"""Which storage a configured location is in: the one place that tells ``s3://`` URIs from local paths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sogs_compressor.errors import InputNotFoundError
from sogs_compressor.fetch.uri import S3Uri, is_s3_uri, names_one_object, parse_s3_uri
from sogs_compressor.fetch.waiting import StopCheck
from sogs_compressor.storage.base import Storage
from sogs_compressor.storage.local import LocalStorage
from sogs_compressor.storage.s3 import S3Storage

if TYPE_CHECKING:  # boto3 is imported only once a job talks to S3
    from sogs_compressor.fetch.s3 import S3Manager


def open_input(text: str, connect: Callable[[], S3Manager], should_stop: StopCheck = None) -> tuple[Storage, str]:
    """The storage an input is in, and the key of the one object it names (``""`` when it names a folder).

    An ``s3://`` URI names one object when it ends in a scene extension, a prefix otherwise; a local path names
    a file or a folder, and must exist (an S3 prefix may be empty: that is found out by listing it).
    """
    if is_s3_uri(text):
        uri = parse_s3_uri(text)
        if not names_one_object(uri):
            return S3Storage(connect(), uri, should_stop), ""
        parent, _, name = uri.key.rpartition("/")
        return S3Storage(connect(), S3Uri(uri.bucket, f"{parent}/" if parent else ""), should_stop), name
    path = Path(text)
    if not path.exists():
        raise InputNotFoundError(f"input {text} does not exist")
    if path.is_file():
        return LocalStorage(path.parent), path.name
    return LocalStorage(path), ""


def open_output(s3_output: S3Uri | None, local_root: Path, connect: Callable[[], S3Manager],
                should_stop: StopCheck = None) -> Storage:
    """The storage scenes are put in: the ``s3_output`` prefix when there is one, else the local output folder."""
    if s3_output is not None:
        return S3Storage(connect(), s3_output, should_stop)
    return LocalStorage(local_root)
