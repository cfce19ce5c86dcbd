"""S3 keys (untrusted text) turned into local paths that can never leave the target folder."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from sogs_compressor.errors import InputError

MAX_KEY_PART = 255


class UnsafeKeyError(InputError):
    """A key that would resolve outside the download folder (``..``, absolute, NUL, ...)."""

    exit_code = 3


def relative_key(key: str, prefix: str) -> str:
    """The part of ``key`` below ``prefix`` (prefix matched on a ``/`` boundary by the caller)."""
    if not key.startswith(prefix):
        raise UnsafeKeyError(f"key {key!r} is not below prefix {prefix!r}")
    return key[len(prefix):]


def key_parts(relative: str) -> list[str]:
    """The ``/``-separated parts of a relative key, refused when it could name anything outside its folder:
    empty, absolute, ``.``/``..`` or empty parts, NUL, backslash, a drive letter. Length is not checked here:
    the job derives local names that fit (``job/naming.py``)."""
    if not relative or relative.startswith("/") or "\x00" in relative or "\\" in relative:
        raise UnsafeKeyError(f"unsafe S3 key {relative!r}: absolute, empty or with forbidden characters")
    parts = relative.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeKeyError(f"unsafe S3 key {relative!r}: empty, '.' or '..' path segment")
    if ":" in parts[0] and len(parts[0]) == 2:
        raise UnsafeKeyError(f"unsafe S3 key {relative!r}: looks like a drive letter")
    return parts


def safe_relative_path(relative: str) -> PurePosixPath:
    """A relative key as a local relative path: ``key_parts`` plus every part within the file-name limit."""
    parts = key_parts(relative)
    for part in parts:
        if len(part.encode()) > MAX_KEY_PART:
            raise UnsafeKeyError(f"unsafe S3 key {relative!r}: a path segment is longer than {MAX_KEY_PART} bytes")
    return PurePosixPath(*parts)


def local_path_for(root: Path, relative: str) -> Path:
    """``root/relative`` after checking the key and that the resolved path stays inside ``root``."""
    rel = safe_relative_path(relative)
    root_resolved = root.resolve()
    target = (root_resolved / rel).resolve()
    if not target.is_relative_to(root_resolved) or target == root_resolved:
        raise UnsafeKeyError(f"unsafe S3 key {relative!r}: resolves outside {root}")
    return target
