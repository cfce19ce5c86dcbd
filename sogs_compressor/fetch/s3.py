"""S3 transfers for the job: list, read small objects, download an object, upload a folder.

boto3 resolves ``AWS_ENDPOINT_URL_S3`` itself, so tests against a local S3 server and S3-compatible stores use
this same code path. Every botocore/s3transfer failure becomes a ``StorageError`` with one clear line.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from s3transfer.subscribers import BaseSubscriber

from sogs_compressor.errors import Interrupted, SogsError, StorageError
from sogs_compressor.fetch.uri import S3Uri
from sogs_compressor.fetch.waiting import POLL_S, StopCheck, call_interruptibly

MiB = 1024 * 1024
DEFAULT_CHUNK = 64 * MiB
DEFAULT_CONCURRENCY = 8
MAX_SMALL_OBJECT = 4 * MiB  # reports and sidecars read into memory
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8", ".json": "application/json", ".txt": "text/plain; charset=utf-8",
    ".webp": "image/webp", ".png": "image/png", ".sog": "application/octet-stream",
}
"""Content-Type of the job's outputs by extension: S3 serves what it was given (binary/octet-stream when
nothing), and a browser opening the viewer page from a bucket or CloudFront needs text/html."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int


def transfer_config_from_env(env: dict | None = None):
    """A TransferConfig sized for multi-GB PLYs; ``SOGS_S3_MULTIPART_THRESHOLD`` / ``_CHUNK`` (bytes) override."""
    from boto3.s3.transfer import TransferConfig

    env = os.environ if env is None else env
    chunk = int(env.get("SOGS_S3_MULTIPART_CHUNK") or env.get("SOGS_S3_MULTIPART_THRESHOLD") or DEFAULT_CHUNK)
    threshold = int(env.get("SOGS_S3_MULTIPART_THRESHOLD") or DEFAULT_CHUNK)
    concurrency = int(env.get("SOGS_S3_CONCURRENCY") or DEFAULT_CONCURRENCY)
    # S3 refuses multipart parts under 5 MiB (except the last one).
    chunk = max(chunk, 5 * MiB)
    return TransferConfig(multipart_threshold=max(threshold, 1), multipart_chunksize=chunk,
                          max_concurrency=concurrency, use_threads=True)


def make_client(max_pool: int = DEFAULT_CONCURRENCY + 2):
    """An S3 client with botocore ``standard`` retries (``legacy`` is still botocore's default)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS", 8))},
                    max_pool_connections=max_pool, connect_timeout=10, read_timeout=120)
    return boto3.session.Session().client("s3", config=config)


def describe_client_error(error: Exception, action: str, uri: S3Uri | str) -> StorageError:
    """One line naming the action, the URI and S3's error code (never credentials)."""
    code = ""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        code = f"{err.get('Code', '')} {err.get('Message', '')}".strip()
    detail = code or f"{type(error).__name__}: {error}"
    return StorageError(f"S3 {action} failed for {uri}: {detail}")


def _check(should_stop: StopCheck, what: str) -> None:
    if should_stop is not None and should_stop():
        raise Interrupted(f"stopped before {what}")


class _Done(BaseSubscriber):
    """Sets an event when its transfer ends, so a waiter can also watch the stop flag."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def on_done(self, future, **kwargs) -> None:
        self.event.set()


def http_status(error: Exception) -> int | None:
    """The HTTP status of a botocore ClientError; None for errors without an answer (a connection closed
    before the response arrived is a botocore HTTPClientError whose ``response`` is None)."""
    response = getattr(error, "response", None)
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(response, dict) else None


class S3Manager:
    """List, read, download and upload with one client and one transfer manager (s3transfer's threads).

    Every call takes an optional ``should_stop``: while it waits, the call asks it every ``POLL_S`` and raises
    ``Interrupted`` as soon as it says so (a transfer in flight is cancelled: s3transfer aborts an unfinished
    multipart upload and removes a partial download's temp file).
    """

    def __init__(self, client=None, transfer_config=None) -> None:
        self.transfer_config = transfer_config or transfer_config_from_env()
        self.client = client or make_client(self.transfer_config.max_request_concurrency + 2)
        self._transfers = None

    @property
    def transfers(self):
        if self._transfers is None:
            from boto3.s3.transfer import create_transfer_manager

            self._transfers = create_transfer_manager(self.client, self.transfer_config)
        return self._transfers

    def close(self) -> None:
        """Stop the transfer threads (nothing is in flight between the job's calls)."""
        if self._transfers is not None:
            self._transfers.shutdown()
            self._transfers = None

    # ---- listing and small objects -------------------------------------------------------------------
    def list_objects(self, uri: S3Uri, should_stop: StopCheck = None) -> list[S3Object]:
        """Every object below a prefix (paginated); folder markers (keys ending in ``/``) are skipped."""
        prefix = uri.as_prefix().key if uri.key else ""
        found = []
        try:
            pages = iter(self.client.get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=prefix))
            while (page := call_interruptibly(lambda: next(pages, None), should_stop, f"listing {uri}")) is not None:
                found += [S3Object(item["Key"], int(item["Size"]))
                          for item in page.get("Contents", []) if not item["Key"].endswith("/")]
        except SogsError:
            raise
        except Exception as error:
            raise describe_client_error(error, "list", uri) from None
        return found

    def list_level(self, uri: S3Uri, should_stop: StopCheck = None) -> tuple[list[S3Object], list[str]]:
        """One level below a prefix (``/``-delimited, paginated): the objects directly in it, and the names of
        its sub-prefixes (without the trailing ``/``). What a nested folder holds is not listed: a scene's
        folder may hold other scenes' folders, of any size."""
        prefix = uri.as_prefix().key if uri.key else ""
        objects, folders = [], []
        try:
            pages = iter(self.client.get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=prefix,
                                                                                Delimiter="/"))
            while (page := call_interruptibly(lambda: next(pages, None), should_stop, f"listing {uri}")) is not None:
                objects += [S3Object(item["Key"], int(item["Size"]))
                            for item in page.get("Contents", []) if not item["Key"].endswith("/")]
                folders += [item["Prefix"][len(prefix):].rstrip("/") for item in page.get("CommonPrefixes", [])]
        except SogsError:
            raise
        except Exception as error:
            raise describe_client_error(error, "list", uri) from None
        return objects, [name for name in folders if name]

    def head(self, uri: S3Uri, should_stop: StopCheck = None) -> int | None:
        """Size of an object, or None when it does not exist."""
        try:
            response = call_interruptibly(lambda: self.client.head_object(Bucket=uri.bucket, Key=uri.key),
                                          should_stop, f"reading {uri}")
            return int(response["ContentLength"])
        except SogsError:
            raise
        except Exception as error:
            if http_status(error) == 404:
                return None
            raise describe_client_error(error, "head", uri) from None

    def read_small(self, uri: S3Uri, limit: int = MAX_SMALL_OBJECT, should_stop: StopCheck = None) -> bytes | None:
        """An object's bytes when it exists and is at most ``limit`` bytes (reports, sidecars); else None."""
        size = self.head(uri, should_stop)
        if size is None or size > limit:
            return None

        def get() -> bytes:
            return self.client.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read(limit + 1)[:limit]

        try:
            return call_interruptibly(get, should_stop, f"reading {uri}")
        except SogsError:
            raise
        except Exception as error:
            raise describe_client_error(error, "get", uri) from None

    def delete(self, uri: S3Uri, should_stop: StopCheck = None) -> None:
        """Delete one object (deleting a missing one is not an error in S3)."""
        try:
            call_interruptibly(lambda: self.client.delete_object(Bucket=uri.bucket, Key=uri.key), should_stop,
                               f"deleting {uri}")
        except SogsError:
            raise
        except Exception as error:
            raise describe_client_error(error, "delete", uri) from None

    # ---- transfers -----------------------------------------------------------------------------------
    def download_file(self, uri: S3Uri, target: Path, expected_size: int | None = None,
                      should_stop: StopCheck = None) -> None:
        """Download one object to ``target`` (s3transfer writes a temp name and renames it when complete), then
        check its size against ``expected_size`` (from the listing): a short file never passes as the input."""
        _check(should_stop, f"downloading {uri}")
        target.parent.mkdir(parents=True, exist_ok=True)
        done = _Done()
        future = self.transfers.download(uri.bucket, uri.key, str(target), subscribers=[done])
        self._wait(future, done, should_stop, "download", uri)
        size = target.stat().st_size
        if expected_size is not None and size != expected_size:
            target.unlink(missing_ok=True)
            raise StorageError(f"S3 download failed for {uri}: got {size} bytes, the listing said {expected_size} "
                               "(object changed while the job ran?)")

    def upload_file(self, path: Path, uri: S3Uri, should_stop: StopCheck = None) -> None:
        _check(should_stop, f"uploading {uri}")
        done = _Done()
        content_type = CONTENT_TYPES.get(path.suffix.lower())
        future = self.transfers.upload(str(path), uri.bucket, uri.key, subscribers=[done],
                                       extra_args={"ContentType": content_type} if content_type else None)
        try:
            self._wait(future, done, should_stop, "upload", uri)
        finally:
            if path.stat().st_size >= self.transfer_config.multipart_threshold and done.event.is_set():
                self._abort_orphans(uri)

    def _abort_orphans(self, uri: S3Uri) -> None:
        """Abort the multipart uploads of ``uri`` that nobody will complete.

        s3transfer aborts the upload it knows; but when S3 applied a CreateMultipartUpload whose answer was lost,
        the retry starts another, and the first stays open (and billed) with an id s3transfer never saw. The job is
        the only writer of its keys, so every open upload of this exact key is such an orphan. Needs
        ``s3:ListBucketMultipartUploads``; without it the orphans wait for the bucket's lifecycle rule.
        """
        try:
            listing = self.client.list_multipart_uploads(Bucket=uri.bucket, Prefix=uri.key)
            for upload in listing.get("Uploads", []):
                if upload.get("Key") == uri.key:
                    self.client.abort_multipart_upload(Bucket=uri.bucket, Key=uri.key, UploadId=upload["UploadId"])
        except Exception as error:  # a clean-up: never the reason a scene fails
            log.warning("S3 multipart clean-up failed for %s: %s", uri, describe_client_error(error, "clean-up", uri))

    def _wait(self, future, done: _Done, should_stop: StopCheck, action: str, uri: S3Uri) -> None:
        """Wait for a transfer; cancel it and raise ``Interrupted`` when ``should_stop`` says so."""
        while should_stop is None or not should_stop():
            if done.event.wait(POLL_S):
                break
        if not done.event.is_set():
            future.cancel()
            raise Interrupted(f"stopped during S3 {action} of {uri}")
        try:
            future.result()
        except Exception as error:
            raise describe_client_error(error, action, uri) from None
