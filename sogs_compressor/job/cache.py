"""Reuse an earlier output of the same input bytes and settings instead of compressing again.

A scene folder is complete when its ``compression_report.json`` exists (it is written, and uploaded, last).
It is a cache hit when that report names the same input sha256 and the same cache key (the codec settings
that change the output bytes, plus the tool version), every output file it lists is still there with the
recorded size (and, on local disk, the recorded sha256), and the text report is there too: a rerun notices a
missing piece and compresses again. The look-up is one, whatever the output storage (``storage/``). Output
names are paths relative to the scene folder (a Streamed SOG's chunk files: ``L_I/meta.json`` ...); a name that
could lead outside it makes the report no match.
"""

from __future__ import annotations

import json

from sogs_compressor.errors import Interrupted, OutputError, StorageError
from sogs_compressor.fetch.paths import UnsafeKeyError, key_parts
from sogs_compressor.options import CompressOptions
from sogs_compressor.report.hashing import sha256_file, sha256_text
from sogs_compressor.report.scene import JSON_NAME, TEXT_NAME
from sogs_compressor.storage.base import Storage, join_key
from sogs_compressor.strict_json import JsonRefused, loads_strict

MAX_REPORT_BYTES = 4 * 1024 * 1024  # a scene report is a few kB; a larger one is no report of ours

# Settings that never change the output bytes.
NOT_IN_KEY = ("device", "name")


def cache_key(options: CompressOptions, tool_version: str) -> str:
    """A digest of the output-relevant settings and the tool version."""
    settings = {k: v for k, v in options.to_dict().items() if k not in NOT_IN_KEY}
    return sha256_text(json.dumps({"settings": settings, "tool_version": tool_version}, sort_keys=True, default=str))


def parse_report(raw: bytes | str | None) -> dict | None:
    if raw is None:
        return None
    try:
        report = loads_strict(raw)
    except JsonRefused:  # a damaged or tampered report: compress again
        return None
    return report if isinstance(report, dict) else None


def report_matches(report: dict | None, input_sha256: str, key: str) -> bool:
    return (
        report is not None
        and report.get("status") in ("ok", "reused")
        and (report.get("input") or {}).get("sha256") == input_sha256
        and report.get("cache_key") == key
        and isinstance(report.get("outputs"), list)
        and bool(report["outputs"])
    )


def may_match(report: dict | None, input_bytes: int, key: str) -> bool:
    """A cheap first test (no hashing): the report is of an input of this size, made with this cache key."""
    return (report is not None and report.get("cache_key") == key
            and (report.get("input") or {}).get("bytes") == input_bytes)


def output_names(report: dict) -> list[str] | None:
    """The report's output names, or None when one is not a plain relative path inside the scene folder."""
    names = [item.get("name") if isinstance(item, dict) else None for item in report["outputs"]]
    try:
        for name in names:
            if not isinstance(name, str):
                return None
            key_parts(name)
    except UnsafeKeyError:
        return None
    return names


def find(storage: Storage, folder: str, input_sha256: str, key: str) -> dict | None:
    """The earlier report in the scene folder ``folder`` of the output storage when it is a complete, intact output
    of this input and key: every output there with its recorded size, and with its recorded sha256 where the file
    is on this machine (S3 ETags are not sha256, and downloading the outputs to hash them would cost more than
    compressing again)."""
    report = parse_report(storage.read(join_key(folder, JSON_NAME), MAX_REPORT_BYTES))
    if not report_matches(report, input_sha256, key):
        return None
    names = output_names(report)
    if names is None:
        return None
    try:
        if storage.head(join_key(folder, TEXT_NAME)) is None:
            return None
        for name, item in zip(names, report["outputs"], strict=True):
            found = storage.head(join_key(folder, name))
            if found is None or found.size != item.get("bytes"):
                return None
            local = storage.local_file(join_key(folder, name))
            if local is not None and sha256_file(local) != item.get("sha256"):
                return None
    except Interrupted:
        raise
    except (StorageError, OutputError):  # unreachable, or a link that leads out of the output folder: no match
        return None
    return report
