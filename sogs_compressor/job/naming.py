"""Names the job derives from untrusted keys and paths: short enough for any file system, compared as people see
them.

A key may hold a 255-byte name (or longer: S3 only limits the whole key to 1024 bytes), but the job adds to the
names it derives (``<name>.sog``, ``<name>.preview.png``, ``<stem>.metadata.json``, writers' temp suffixes), and
Linux refuses names over 255 bytes. So every derived name is kept within ``NAME_LIMIT`` bytes: a longer one
keeps its start and gets ``~`` plus 16 hex digits of the full name's sha256 (stable across runs and hosts, and
unique), with its extension kept. Two names that differ only in letter case or Unicode normalisation (``café``
as NFC and as NFD) look the same to people and to some file systems: ``look_alike`` maps them to one text.
"""

from __future__ import annotations

import hashlib
import unicodedata

NAME_LIMIT = 200  # bytes; leaves room under the 255-byte limit for what the job and the writers append
DIGEST_CHARS = 16


def fit_name(name: str, suffix: str = "", limit: int = NAME_LIMIT) -> str:
    """``name`` when it has at most ``limit`` UTF-8 bytes; else its start, ``~``, 16 hex digits of its sha256,
    and ``suffix`` (when ``name`` ends with it), still within ``limit`` bytes."""
    if name_bytes(name) <= limit:
        return name
    keep = name[len(name) - len(suffix):] if suffix and name.lower().endswith(suffix.lower()) else ""
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:DIGEST_CHARS]
    room = limit - name_bytes(keep) - 1 - DIGEST_CHARS
    head, used = [], 0
    for char in name[: len(name) - len(keep)]:  # cut on a character boundary
        used += name_bytes(char)
        if used > room:
            break
        head.append(char)
    return f"{''.join(head)}~{digest}{keep}"


def name_bytes(name: str) -> int:
    """Length in bytes on disk (local names that are not UTF-8 arrive surrogate-escaped)."""
    return len(name.encode("utf-8", "surrogateescape"))


def fit_path(rel: str) -> str:
    """A ``/``-separated relative path with every part passed through ``fit_name``."""
    return "/".join(fit_name(part) for part in rel.split("/"))


def look_alike(text: str) -> str:
    """One text for names that differ only in letter case or Unicode normalisation (canonical caseless form)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).casefold())
