"""A SOG's meta.json: built by the encoder, and parsed strictly, with typed access, by the decoder.

Building: the documented key order (version, asset, count, model, means, scales, quats, sh0, shN) and compact
JSON like splat-transform's, NaN/Infinity refused.

Parsing: any malformed value is one CorruptSogError. Only JSON's own grammar is accepted: ``NaN``/``Infinity``
(which a browser's ``JSON.parse`` refuses) and integer literals too long to be a count are refused while parsing,
and nesting too deep for the parser is reported as such. Every value the decoder uses goes through a checker that
names the key and says what was expected, and numbers are checked against the range they will be stored in, so
decoding never overflows.
"""

from __future__ import annotations

import json
import reprlib
from typing import Any

import numpy as np

from sogs_compressor import __version__
from sogs_compressor.errors import CorruptSogError
from sogs_compressor.strict_json import JsonRefused, loads_strict

GENERATOR = f"sogs-compressor v{__version__}"

MAX_META_BYTES = 16 << 20
"""A real meta.json is a few KiB (three 256-entry codebooks); anything over this is refused unread."""

FLOAT32_MAX = float(np.finfo(np.float32).max)

_brief = reprlib.Repr()
_brief.maxstring = _brief.maxother = 60
_brief.maxlist = _brief.maxdict = 6


# --- parsing --------------------------------------------------------------------------------------------------

def brief(value: Any) -> str:
    """A short, one-line repr of a JSON value for error messages (never the whole of a huge or deep value)."""
    return _brief.repr(value)


def parse_json_object(raw: bytes, name: str, max_bytes: int) -> dict:
    """A JSON object as browsers read it, from an untrusted file called ``name``: at most ``max_bytes``, no NaN or
    Infinity, no absurd integer literals or nesting (``strict_json``); CorruptSogError (exit 17) naming the file
    otherwise."""
    if len(raw) > max_bytes:
        raise CorruptSogError(f"{name} is {len(raw)} bytes, over the {max_bytes} limit")
    try:
        value = loads_strict(raw)
    except JsonRefused as reason:
        raise CorruptSogError(f"{name} {reason}") from None
    if not isinstance(value, dict):
        raise CorruptSogError(f"{name} is not a JSON object")
    return value


def parse_meta(raw: bytes) -> dict:
    """The meta.json object; CorruptSogError for anything that is not a JSON object of plausible size."""
    return parse_json_object(raw, "meta.json", MAX_META_BYTES)


def section(parent: dict, key: str, where: str = "") -> dict:
    """``parent[key]`` as an object (``where`` prefixes the key in messages, e.g. ``"shN."``)."""
    value = parent.get(key)
    if not isinstance(value, dict):
        found = "missing" if value is None else f"not an object ({brief(value)})"
        raise CorruptSogError(f"meta.json {where}{key} is {found}")
    return value


def integer(value: Any, what: str, low: int, high: int, file: str = "meta.json") -> int:
    """A JSON integer (``3.0`` counts) in ``[low, high]``; messages name ``file`` (meta.json, lod-meta.json)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CorruptSogError(f"{file} {what} is not an integer ({brief(value)})")
    if not low <= value <= high:
        raise CorruptSogError(f"{file} {what} is {value}, out of range {low}..{high}")
    return value


def number(value: Any, what: str, limit: float) -> float:
    """A finite JSON number with ``|value| <= limit``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise CorruptSogError(f"meta.json {what} is not a number ({brief(value)})")
    result = float(value)  # ints have at most strict_json.MAX_INT_DIGITS digits: never overflows
    if not abs(result) <= limit:
        raise CorruptSogError(f"meta.json {what} is {brief(value)}, outside +-{limit:.6g}")
    return result


def numbers(value: Any, n: int, what: str, limit: float) -> np.ndarray:
    """Exactly ``n`` finite numbers, each within ``limit``, as float64."""
    if not isinstance(value, list) or len(value) != n:
        raise CorruptSogError(f"meta.json {what} is not a list of {n} numbers ({brief(value)})")
    return np.array([number(v, f"{what}[{i}]", limit) for i, v in enumerate(value)], np.float64)


def file_names(parent: dict, n: int, where: str) -> list[str]:
    """The first ``n`` names of ``parent["files"]`` (each a non-empty string)."""
    files = parent.get("files")
    if not isinstance(files, list) or len(files) < n:
        raise CorruptSogError(f"meta.json {where}.files is not a list of {n} file names ({brief(files)})")
    names = files[:n]
    for name in names:
        if not isinstance(name, str) or not name:
            raise CorruptSogError(f"meta.json {where}.files holds {brief(name)}, not a file name")
    return names


def codebook(parent: dict, where: str) -> np.ndarray:
    """256 float32 values; a null first entry (old splat-transform k-means bug) takes its neighbour's value."""
    raw = parent.get("codebook")
    if not isinstance(raw, list) or len(raw) != 256:
        size = len(raw) if isinstance(raw, list) else brief(raw)
        raise CorruptSogError(f"meta.json {where}.codebook has {size} entries, expected 256")
    if raw[0] is None and raw[1] is not None:
        raw = [raw[1], *raw[1:]]
    return numbers(raw, 256, f"{where}.codebook", FLOAT32_MAX).astype(np.float32)


# --- building -------------------------------------------------------------------------------------------------

def build_meta(count: int, model: str, means_range: tuple[list[float], list[float]], scales_codebook: np.ndarray,
               sh0_codebook: np.ndarray, shn: dict | None = None) -> dict:
    """The meta.json object of a SOG v2, keys in the documented order; ``shn`` from ``shn_section``."""
    meta: dict = {"version": 2, "asset": {"generator": GENERATOR}, "count": count}
    if model != "default":
        meta["model"] = model
    mins, maxs = means_range
    meta["means"] = {"mins": mins, "maxs": maxs, "files": ["means_l.webp", "means_u.webp"]}
    meta["scales"] = {"codebook": codebook_floats(scales_codebook), "files": ["scales.webp"]}
    meta["quats"] = {"files": ["quats.webp"]}
    meta["sh0"] = {"codebook": codebook_floats(sh0_codebook), "files": ["sh0.webp"]}
    if shn is not None:
        meta["shN"] = shn
    return meta


def shn_section(count: int, bands: int, codebook_values: np.ndarray) -> dict:
    """meta.json's ``shN``: ``count`` palette entries of SH degree ``bands``, their values' codebook."""
    return {
        "count": count,
        "bands": bands,
        "codebook": codebook_floats(codebook_values),
        "files": ["shN_centroids.webp", "shN_labels.webp"],
    }


def codebook_floats(values: np.ndarray) -> list[float]:
    """A codebook as meta.json holds it: each float32 value as its shortest decimal (``shortest_float32``);
    ValueError for a non-finite one (not JSON).

    Every reader keeps codebooks as float32 (the engine's lookup texture, splat-transform's ``Float32Array``,
    ours), so the decoded scene is the same as with exact doubles, while the codebooks, most of a meta.json, take
    about half the characters: 0.4% of the real guitar's .sog, a few per cent of a Streamed SOG of small chunks
    (bench/RESULTS.md). Positions' ``mins``/``maxs`` stay exact doubles: splat-transform decodes them in double
    precision."""
    values = np.asarray(values, np.float32)
    if not np.all(np.isfinite(values)):
        raise ValueError("codebook holds non-finite values")
    return [shortest_float32(v) for v in values]


def shortest_float32(value: float) -> float:
    """The shortest decimal that reads back as the same float32 when parsed as a double and rounded to float32,
    which is what JSON.parse + Float32Array (engine, splat-transform) and our reader do; the exact double of the
    float32 in the rare case the shortest string would round differently through the double, or would lie beyond
    the float32 range as a double (``3.4028235e+38`` for the largest float32: readers that check the range in
    double precision, ours included, refuse it)."""
    exact = np.float32(value)
    short = float(str(exact))
    return short if np.float32(short) == exact and abs(short) <= FLOAT32_MAX else float(exact)


def meta_bytes(meta: dict) -> bytes:
    """Compact JSON like splat-transform's; NaN/Infinity are refused (browsers cannot parse them)."""
    return json.dumps(meta, separators=(",", ":"), allow_nan=False).encode("utf-8")


def texture_names(meta: dict) -> list[str]:
    """The texture files a SOG v2 meta names, in the order splat-transform writes them."""
    names: list[str] = []
    for key in ("means", "quats", "scales", "sh0", "shN"):
        if key in meta:
            names.extend(meta[key]["files"])
    return names
