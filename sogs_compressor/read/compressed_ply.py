"""PlayCanvas / SuperSplat ``compressed.ply`` reader (formats.md 1.3), fully vectorized.

Arithmetic follows splat-transform's decoder (float64 maths, float32 results), so our decoded values match the
float PLY that ``splat-transform -w in.compressed.ply out.ply`` writes.
"""

from __future__ import annotations

import os

import numpy as np

from sogs_compressor.errors import (
    EmptySceneError,
    MissingPropertiesError,
    ShCountError,
    SizeMismatchError,
    UnsupportedFormatError,
)
from sogs_compressor.read import Scene
from sogs_compressor.read.ply import binary_offsets, model_from_comments, open_input
from sogs_compressor.read.ply_header import PlyElement, PlyHeader, parse_ply_header
from sogs_compressor.splats import SH_C0, SplatSet

CHUNK_SIZE = 256
CHUNK_BOUNDS = (
    "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
    "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
)
CHUNK_COLORS = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
_REST_COUNTS = (9, 24, 45)
# Slots of the three stored quaternion components for each "largest component" index 0..3.
_OTHER_SLOTS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


def unorm(values: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """``bits`` wide unsigned field at ``shift`` of uint32 words, scaled to [0, 1] (float64)."""
    mask = (1 << bits) - 1
    return ((values >> np.uint32(shift)) & np.uint32(mask)).astype(np.float64) / mask


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """splat-transform's ``a*(1-t) + b*t`` (not ``a + (b-a)*t``: the rounding differs)."""
    return a * (1.0 - t) + b * t


def decode_triplet(packed: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """An 11/10/11-bit packed vec3 (x high bits, z low bits) mapped into per-splat [lo, hi] boxes."""
    t = np.stack([unorm(packed, 21, 11), unorm(packed, 11, 10), unorm(packed, 0, 11)], axis=1)
    return lerp(lo, hi, t).astype(np.float32)


def decode_rotation(packed: np.ndarray) -> np.ndarray:
    """Smallest-three quaternions: 2-bit index of the largest component, then three 10-bit components."""
    n = packed.shape[0]
    others = np.stack([unorm(packed, 20, 10), unorm(packed, 10, 10), unorm(packed, 0, 10)], axis=1)
    others = (others - 0.5) * (1.0 / (np.sqrt(2.0) * 0.5))
    largest = np.sqrt(np.maximum(0.0, 1.0 - (others * others).sum(axis=1)))
    mode = (packed >> np.uint32(30)).astype(np.intp)
    quats = np.empty((n, 4), np.float64)
    rows = np.arange(n)[:, None]
    quats[rows, _OTHER_SLOTS[mode]] = others
    quats[np.arange(n), mode] = largest
    return quats.astype(np.float32)


def decode_color(packed: np.ndarray, lo: np.ndarray | None, hi: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(f_dc (N, 3), opacity logit (N,)) from RGBA8 words; colour ranges are optional (12-property chunks)."""
    rgb = np.stack([unorm(packed, 24, 8), unorm(packed, 16, 8), unorm(packed, 8, 8)], axis=1)
    if lo is not None:
        rgb = lerp(lo, hi, rgb)
    f_dc = ((rgb - 0.5) / SH_C0).astype(np.float32)
    alpha = unorm(packed, 0, 8)
    with np.errstate(divide="ignore"):
        opacity = -np.log(1.0 / alpha - 1.0)
    return f_dc, opacity.astype(np.float32)


def decode_sh(bytes_: np.ndarray) -> np.ndarray:
    """SH bytes -> f_rest the way splat-transform does: 0 and 255 map to the ends, others to bin centres."""
    n = (bytes_.astype(np.float64) + 0.5) / 256.0
    n[bytes_ == 0] = 0.0
    n[bytes_ == 255] = 1.0
    return ((n - 0.5) * 8.0).astype(np.float32)


def _require(element: PlyElement, names: tuple[str, ...] | list[str]) -> None:
    missing = [name for name in names if name not in element.names]
    if missing:
        raise MissingPropertiesError(
            f"compressed PLY element '{element.name}' is missing properties: {', '.join(missing)}"
        )


def _sh_names(sh: PlyElement | None, count: int) -> list[str]:
    if sh is None:
        return []
    rest = len(sh.properties)
    if rest not in _REST_COUNTS:
        raise ShCountError(f"compressed PLY 'sh' element has {rest} properties; expected 9, 24 or 45")
    names = [f"f_rest_{i}" for i in range(rest)]
    _require(sh, names)
    if sh.count != count:
        raise SizeMismatchError(f"compressed PLY has {count} vertices but {sh.count} 'sh' rows")
    return names


def _validate(header: PlyHeader) -> tuple[PlyElement, PlyElement, PlyElement | None]:
    chunk, vertex, sh = header.element("chunk"), header.element("vertex"), header.element("sh")
    if header.byte_order is None:
        raise UnsupportedFormatError("ascii compressed PLY is not supported (compressed PLY is always binary)")
    _require(chunk, CHUNK_BOUNDS)
    _require(vertex, PACKED)
    if len(chunk.properties) not in (12, 18):
        raise UnsupportedFormatError(f"compressed PLY chunk element has {len(chunk.properties)} properties; expected 12 or 18")
    if len(chunk.properties) == 18:
        _require(chunk, CHUNK_COLORS)
    wrong = [q.name for q in vertex.properties if q.name in PACKED and q.type not in ("u4", "i4")]
    wrong += [q.name for q in (sh.properties if sh is not None else []) if q.type != "u1"]
    if wrong:
        raise UnsupportedFormatError(f"compressed PLY properties with unexpected types: {', '.join(wrong)}")
    needed_chunks = -(-vertex.count // CHUNK_SIZE)
    if chunk.count < needed_chunks:
        raise SizeMismatchError(
            f"compressed PLY has {chunk.count} chunks but {vertex.count} vertices need {needed_chunks}"
        )
    return chunk, vertex, sh


def _read_element(f, header: PlyHeader, element: PlyElement, offset: int) -> np.ndarray:
    f.seek(offset)
    data = np.fromfile(f, dtype=element.dtype(header.byte_order), count=element.count)
    if data.shape[0] != element.count:
        raise SizeMismatchError(f"compressed PLY ended early in element '{element.name}'")
    return data


def _chunk_columns(chunks: np.ndarray, names: tuple[str, ...], index: np.ndarray) -> np.ndarray:
    """Per-splat (N, len(names)) float64 values of chunk columns (each splat sees its chunk's row)."""
    table = np.stack([chunks[name].astype(np.float64) for name in names], axis=1)
    return table[index]


def read_compressed_ply(path: str | os.PathLike) -> Scene:
    """Read a PlayCanvas compressed PLY into a Scene (format ``compressed_ply``)."""
    p, f, size = open_input(path)
    with f:
        header = parse_ply_header(f)
        chunk, vertex, sh = _validate(header)
        rest = _sh_names(sh, vertex.count)
        offsets = binary_offsets(header, size)
        if vertex.count == 0:
            raise EmptySceneError(f"{p} holds zero splats")
        chunks = _read_element(f, header, chunk, offsets["chunk"])
        words = _read_element(f, header, vertex, offsets["vertex"])
        sh_bytes = _read_element(f, header, sh, offsets["sh"]) if sh is not None else None
    splats = decode(chunks, words, sh_bytes, rest, model_from_comments(header.comments))
    facts = {
        "encoding": header.format,
        "comments": list(header.comments),
        "chunks": chunk.count,
        "chunk_properties": len(chunk.properties),
        "extra_properties": [n for n in vertex.names if n not in PACKED],
    }
    return Scene(splats=splats, format="compressed_ply", path=str(p), bytes=size, header=facts)


def decode(chunks: np.ndarray, words: np.ndarray, sh_bytes: np.ndarray | None, rest: list[str], model: str) -> SplatSet:
    """Decode structured chunk/vertex/sh records into a SplatSet.

    Chunk bounds are used as stored, like splat-transform: bounds that are not finite, or whose values do not
    fit float32, decode to inf/NaN quietly, and the sanitizer then drops (or refuses) those splats.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return _decode(chunks, words, sh_bytes, rest, model)


def _decode(chunks: np.ndarray, words: np.ndarray, sh_bytes: np.ndarray | None, rest: list[str], model: str) -> SplatSet:
    n = words.shape[0]
    index = np.arange(n) // CHUNK_SIZE
    bounds = _chunk_columns(chunks, CHUNK_BOUNDS, index)
    has_colors = chunks.dtype.names is not None and "min_r" in chunks.dtype.names
    colors = _chunk_columns(chunks, CHUNK_COLORS, index) if has_colors else None
    packed = {name: words[name].astype(np.uint32) for name in PACKED}
    f_dc, opacity = decode_color(
        packed["packed_color"],
        colors[:, :3] if colors is not None else None,
        colors[:, 3:] if colors is not None else None,
    )
    if sh_bytes is not None:
        f_rest = decode_sh(np.stack([sh_bytes[name] for name in rest], axis=1))
    else:
        f_rest = np.zeros((n, 0), np.float32)
    return SplatSet(
        positions=decode_triplet(packed["packed_position"], bounds[:, 0:3], bounds[:, 3:6]),
        log_scales=decode_triplet(packed["packed_scale"], bounds[:, 6:9], bounds[:, 9:12]),
        rotations=decode_rotation(packed["packed_rotation"]),
        opacity_logits=opacity,
        f_dc=f_dc,
        f_rest=f_rest,
        model=model,
    )
