"""S3 transfers for the job: list, download a prefix or object, upload a folder.

boto3 resolves ``AWS_ENDPOINT_URL_S3`` itself, so tests against a local S3 server and S3-compatible stores use
this same code path. Every botocore/s3transfer failure becomes a ``StorageError`` with one clear line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sogs_compressor.errors import SogsError, StorageError
from sogs_compressor.fetch.paths import UnsafeKeyError, local_path_for, relative_key
from sogs_compressor.fetch.uri import S3Uri, names_one_object

MiB = 1024 * 1024
DEFAULT_CHUNK = 64 * MiB
DEFAULT_CONCURRENCY = 8
MAX_SMALL_OBJECT = 4 * MiB  # reports and sidecars read into memory


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int


@dataclass
class DownloadResult:
    """What a download produced: local files (with their key) and keys refused as unsafe."""

    files: list[tuple[str, Path]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    skipped: list[str] = field(default_factory=list)  # folder markers, filtered keys


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


class S3Manager:
    """Download and upload with one client and one TransferConfig."""

    def __init__(self, client=None, transfer_config=None) -> None:
        self.transfer_config = transfer_config or transfer_config_from_env()
        self.client = client or make_client(self.transfer_config.max_request_concurrency + 2)

    # ---- listing -------------------------------------------------------------------------------------
    def list_objects(self, uri: S3Uri) -> Iterator[S3Object]:
        """Every object below a prefix (paginated); folder markers (keys ending in ``/``) are skipped."""
        prefix = uri.as_prefix().key if uri.key else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    if not item["Key"].endswith("/"):
                        yield S3Object(item["Key"], int(item["Size"]))
        except SogsError:
            raise
        except Exception as error:
            raise describe_client_error(error, "list", uri) from None

    def head(self, uri: S3Uri) -> int | None:
        """Size of an object, or None when it does not exist."""
        try:
            return int(self.client.head_object(Bucket=uri.bucket, Key=uri.key)["ContentLength"])
        except Exception as error:
            status = getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                return None
            raise describe_client_error(error, "head", uri) from None

    def read_small(self, uri: S3Uri, limit: int = MAX_SMALL_OBJECT) -> bytes | None:
        """An object's bytes when it exists and is at most ``limit`` bytes (reports, sidecars); else None."""
        size = self.head(uri)
        if size is None or size > limit:
            return None
        try:
            return self.client.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read(limit + 1)[:limit]
        except Exception as error:
            raise describe_client_error(error, "get", uri) from None

    # ---- download ------------------------------------------------------------------------------------
    def download(self, uri: S3Uri, dest: Path, keep: Callable[[str], bool] | None = None) -> DownloadResult:
        """Download one object or every object below a prefix into ``dest``, keeping the relative layout.

        Keys that would land outside ``dest`` are not downloaded but listed in ``rejected``.
        """
        if names_one_object(uri):
            return self.download_keys(uri.bucket, uri.key.rsplit("/", 1)[0] + "/" if "/" in uri.key else "",
                                      [uri.key], dest)
        keys = [obj.key for obj in self.list_objects(uri)]
        kept = [k for k in keys if keep is None or keep(k)]
        result = self.download_keys(uri.bucket, uri.as_prefix().key if uri.key else "", kept, dest)
        kept_set = set(kept)
        result.skipped.extend(k for k in keys if k not in kept_set)
        return result

    def download_keys(self, bucket: str, prefix: str, keys: list[str], dest: Path) -> DownloadResult:
        """Download ``keys`` (all below ``prefix``) to ``dest/<key minus prefix>``; unsafe keys are rejected."""
        dest.mkdir(parents=True, exist_ok=True)
        result = DownloadResult()
        for key in keys:
            try:
                target = local_path_for(dest, relative_key(key, prefix))
            except UnsafeKeyError as error:
                result.rejected.append((key, str(error)))
                continue
            self._download_one(S3Uri(bucket, key), target, result)
        return result

    def _download_one(self, uri: S3Uri, target: Path, result: DownloadResult) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(uri.bucket, uri.key, str(target), Config=self.transfer_config)
        except Exception as error:
            raise describe_client_error(error, "download", uri) from None
        result.files.append((uri.key, target))

    # ---- upload --------------------------------------------------------------------------------------
    def upload_file(self, path: Path, uri: S3Uri) -> None:
        try:
            self.client.upload_file(str(path), uri.bucket, uri.key, Config=self.transfer_config)
        except Exception as error:
            raise describe_client_error(error, "upload", uri) from None

    def upload_dir(self, folder: Path, uri: S3Uri, last: tuple[str, ...] = ()) -> list[S3Uri]:
        """Upload every regular file below ``folder`` (symlinks are not followed); names in ``last`` go last.

        Putting the reports last means a reader who sees a report also sees the files it describes.
        """
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
        files.sort(key=lambda p: p.name in last)
        uploaded = []
        for path in files:
            target = uri.join(path.relative_to(folder).as_posix())
            self.upload_file(path, target)
            uploaded.append(target)
        return uploaded
