"""S3 keys are untrusted text: a relative key that could name anything outside its folder is refused.

The job never uses a key as a local path (downloads go to folders and names it derives, ``job/inputs.py``), but
a key's relative path becomes the scene's output folder, locally or under the S3 output prefix."""

from __future__ import annotations

from sogs_compressor.errors import InputError


class UnsafeKeyError(InputError):
    """A key that would resolve outside its folder (``..``, absolute, NUL, ...)."""

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
