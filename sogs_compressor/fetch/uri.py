"""``s3://bucket/key`` URIs, split by hand: ``urllib.parse`` would swallow a ``#`` or ``?`` inside a key."""

from __future__ import annotations

from dataclasses import dataclass

from sogs_compressor.errors import StorageError

SCHEME = "s3://"


@dataclass(frozen=True)
class S3Uri:
    """A bucket and a key (an object) or key prefix (a "folder"; ends with ``/`` or is empty)."""

    bucket: str
    key: str = ""

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    def as_prefix(self) -> S3Uri:
        """The same location as a folder prefix (trailing ``/``), so ``scenes`` never matches ``scenes-old/``."""
        return self if self.is_prefix else S3Uri(self.bucket, self.key + "/")

    def join(self, relative: str) -> S3Uri:
        """The key ``relative`` below this prefix, without creating ``//`` (S3 would keep it)."""
        parts = [p for p in relative.replace("\\", "/").split("/") if p]
        return S3Uri(self.bucket, self.as_prefix().key + "/".join(parts))


def is_s3_uri(text: str | None) -> bool:
    return bool(text) and text.strip().lower().startswith(SCHEME)


def parse_s3_uri(text: str) -> S3Uri:
    """Split ``s3://bucket/key``; a bad URI is a StorageError with one clear line."""
    raw = text.strip()
    if not is_s3_uri(raw):
        raise StorageError(f"not an s3:// URI: {text!r}")
    rest = raw[len(SCHEME):]
    bucket, _, key = rest.partition("/")
    if not 3 <= len(bucket) <= 63 or not all(c.isalnum() or c in "-." for c in bucket):
        raise StorageError(f"bad S3 bucket name in {text!r}")
    return S3Uri(bucket, key)


def names_one_object(uri: S3Uri) -> bool:
    """A URI ending in a scene extension is one object; anything else is a prefix."""
    lower = uri.key.lower()
    return not uri.is_prefix and lower.endswith((".ply", ".sog"))
