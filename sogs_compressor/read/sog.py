"""Read a SOG (v2, or the v1 layout of sogs 1.1.0) into a ``Scene``.

Accepted inputs: a ``.sog`` bundle, a meta.json (by any file name), or a folder holding ``meta.json``. The codec
(``sog/decode.py``) checks the whole meta.json first and every texture by its header before a pixel is decoded;
this module adds what a reader reports about the file.
"""

from __future__ import annotations

import os

from sogs_compressor.sog.decode import decode_sog
from sogs_compressor.sog.meta import MAX_META_BYTES, parse_meta
from sogs_compressor.sog.source import open_source


def _meta_summary(meta: dict) -> dict:
    """Informational facts for reports; ``asset`` and the palette size are optional and may be anything."""
    asset = meta.get("asset")
    generator = asset.get("generator") if isinstance(asset, dict) else None
    summary = {"version": meta.get("version"), "generator": generator if isinstance(generator, str) else None}
    shn = meta.get("shN")
    if isinstance(shn, dict) and type(shn.get("count")) is int:
        summary["palette"] = shn["count"]
    return summary


def read_sog(path: str | os.PathLike):
    """Decode a SOG into a ``Scene`` (format ``sog`` or ``sog_v1``); CorruptSogError for anything malformed."""
    from sogs_compressor.read import Scene

    source = open_source(path)
    try:
        meta = parse_meta(source.read_meta(MAX_META_BYTES))
        splats, fmt = decode_sog(meta, source)
    finally:
        source.close()
    return Scene(splats=splats, format=fmt, path=str(path), bytes=source.bytes, header={"meta": _meta_summary(meta)})
