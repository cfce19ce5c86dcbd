"""Test helper: writes real PLY and compressed-PLY files in every variant the readers must handle.

Written independently of ``sogs_compressor.write`` (it builds bytes with numpy and plain string formatting), so
reader tests do not just check that our reader agrees with our own writer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sogs_compressor.splats import COEFFS_PER_DEGREE, SH_C0, SplatSet

NUMPY_CODE = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def random_splats(n: int, sh_degree: int = 0, seed: int = 0, model: str = "default") -> SplatSet:
    """A seeded SplatSet with plausible value ranges (float32)."""
    rng = np.random.default_rng(seed)
    k = COEFFS_PER_DEGREE[sh_degree]

    def f32(*shape: int, scale: float = 1.0, loc: float = 0.0) -> np.ndarray:
        return (rng.normal(loc, scale, shape)).astype(np.float32)

    return SplatSet(
        positions=f32(n, 3, scale=2.0),
        log_scales=f32(n, 3, scale=0.5, loc=-3.0),
        rotations=f32(n, 4),
        opacity_logits=f32(n, scale=2.0),
        f_dc=f32(n, 3, scale=0.8),
        f_rest=f32(n, 3 * k, scale=0.2),
        model=model,
    )


def splat_columns(splats: SplatSet, normals: bool = True) -> dict[str, np.ndarray]:
    """Reference-trainer property names -> float32 column, in the trainer's order."""
    cols: dict[str, np.ndarray] = {}
    for i, axis in enumerate("xyz"):
        cols[axis] = splats.positions[:, i]
    if normals:
        for axis in ("nx", "ny", "nz"):
            cols[axis] = np.zeros(splats.count, np.float32)
    for i in range(3):
        cols[f"f_dc_{i}"] = splats.f_dc[:, i]
    for i in range(splats.f_rest.shape[1]):
        cols[f"f_rest_{i}"] = splats.f_rest[:, i]
    cols["opacity"] = splats.opacity_logits
    for i in range(3):
        cols[f"scale_{i}"] = splats.log_scales[:, i]
    for i in range(4):
        cols[f"rot_{i}"] = splats.rotations[:, i]
    return cols


def stored(values: np.ndarray, type_name: str) -> np.ndarray:
    """``values`` as a property of ``type_name`` holds them (integers rounded and clipped), back as float32."""
    code = np.dtype(NUMPY_CODE[type_name])
    if code.kind in "iu":
        info = np.iinfo(code)
        values = np.clip(np.round(values.astype(np.float64)), info.min, info.max)
    return values.astype(code).astype(np.float32)


@dataclass
class Element:
    """A non-vertex element: fixed properties ``(type, name)`` and optional list properties."""

    name: str
    count: int
    properties: list[tuple[str, str]] = field(default_factory=list)
    lists: list[tuple[str, str, str]] = field(default_factory=list)  # (count type, item type, name)


def _ascii_value(value: float | int, type_name: str) -> str:
    if np.dtype(NUMPY_CODE[type_name]).kind in "iu":
        return str(int(value))
    return repr(float(value))


def _element_header(element: Element) -> list[str]:
    lines = [f"element {element.name} {element.count}"]
    lines += [f"property {t} {name}" for t, name in element.properties]
    lines += [f"property list {ct} {it} {name}" for ct, it, name in element.lists]
    return lines


def _element_data(element: Element, encoding: str, order: str) -> bytes:
    """Deterministic filler rows for a side element (list properties hold three items per row)."""
    rows = np.arange(element.count)
    if encoding == "ascii":
        out = []
        for r in rows:
            words = [_ascii_value(r % 100, t) for t, _ in element.properties]
            for _ct, it, _ in element.lists:
                words += ["3"] + [_ascii_value((r + j) % 100, it) for j in range(3)]
            out.append(" ".join(words))
        return "".join(line + "\n" for line in out).encode()
    fields = [(name, order + NUMPY_CODE[t]) for t, name in element.properties]
    for ct, it, name in element.lists:
        fields += [(f"{name}__count", order + NUMPY_CODE[ct]), (name, order + NUMPY_CODE[it], (3,))]
    data = np.zeros(element.count, np.dtype(fields))
    for _t, name in element.properties:
        data[name] = rows % 100
    for _, _, name in element.lists:
        data[f"{name}__count"] = 3
        data[name] = (rows[:, None] + np.arange(3)) % 100
    return data.tobytes()


def write_ply_variant(
    path: Path,
    splats: SplatSet,
    *,
    encoding: str = "binary_little_endian",
    types: str | dict[str, str] = "float",
    order: list[str] | None = None,
    normals: bool = True,
    drop: tuple[str, ...] = (),
    extra: dict[str, str] | None = None,
    comments: tuple[str, ...] = (),
    newline: str = "\n",
    before: tuple[Element, ...] = (),
    after: tuple[Element, ...] = (),
    vertex_count: int | None = None,
    trailing: bytes = b"",
    truncate: int = 0,
) -> Path:
    """Write ``splats`` as a PLY variant and return the path.

    types: one type name for every property, or per-name overrides (others stay ``float``).
    order: property order (default: the trainer's). drop: properties to leave out (e.g. ``scale_2``).
    extra: additional vertex properties ``name -> type`` (filled with the row index).
    before/after: other elements around the vertex element. vertex_count: lie in the header.
    trailing/truncate: corrupt the size after writing.
    """
    cols = {k: v for k, v in splat_columns(splats, normals).items() if k not in drop}
    for name in extra or {}:
        cols[name] = np.arange(splats.count, dtype=np.float32) % 100
    names = order if order is not None else list(cols)
    assert sorted(names) == sorted(cols), "order must name every written property once"

    def type_of(name: str) -> str:
        if isinstance(types, str):
            return (extra or {}).get(name, types)
        return (extra or {}).get(name) or types.get(name, "float")

    byte_order = ">" if encoding == "binary_big_endian" else "<"
    header = ["ply", f"format {encoding} 1.0", *(f"comment {c}" for c in comments)]
    for element in before:
        header += _element_header(element)
    header.append(f"element vertex {splats.count if vertex_count is None else vertex_count}")
    header += [f"property {type_of(name)} {name}" for name in names]
    for element in after:
        header += _element_header(element)
    header.append("end_header")
    body = [_element_data(e, encoding, byte_order) for e in before]
    if encoding == "ascii":
        rows = zip(*(stored(cols[n], type_of(n)).tolist() for n in names), strict=True) if names else []
        text = "".join(
            " ".join(_ascii_value(v, type_of(n)) for v, n in zip(row, names, strict=True)) + "\n" for row in rows
        )
        body.append(text.encode())
    else:
        dtype = np.dtype([(n, byte_order + NUMPY_CODE[type_of(n)]) for n in names])
        records = np.zeros(splats.count, dtype)
        for n in names:
            records[n] = stored(cols[n], type_of(n))
        body.append(records.tobytes())
    body += [_element_data(e, encoding, byte_order) for e in after]
    data = (newline.join(header) + newline).encode() + b"".join(body) + trailing
    if truncate:
        data = data[:-truncate]
    path.write_bytes(data)
    return path


def expected_splats(splats: SplatSet, types: str | dict[str, str] = "float") -> SplatSet:
    """What a reader must return for ``write_ply_variant(..., types=types)``: values as the file stores them."""
    cols = splat_columns(splats, normals=False)
    stored_cols = {
        name: stored(values, types if isinstance(types, str) else types.get(name, "float"))
        for name, values in cols.items()
    }

    def stack(names: list[str]) -> np.ndarray:
        return np.stack([stored_cols[n] for n in names], axis=1) if names else np.zeros((splats.count, 0), np.float32)

    return SplatSet(
        positions=stack(["x", "y", "z"]),
        log_scales=stack(["scale_0", "scale_1", "scale_2"]),
        rotations=stack(["rot_0", "rot_1", "rot_2", "rot_3"]),
        opacity_logits=stored_cols["opacity"],
        f_dc=stack(["f_dc_0", "f_dc_1", "f_dc_2"]),
        f_rest=stack([f"f_rest_{i}" for i in range(splats.f_rest.shape[1])]),
        model=splats.model,
    )


def assert_splats_equal(actual: SplatSet, expected: SplatSet) -> None:
    """Bit-exact equality of every column (NaN equal to NaN), dtype float32, and the model."""
    for name in ("positions", "log_scales", "rotations", "opacity_logits", "f_dc", "f_rest"):
        a, e = getattr(actual, name), getattr(expected, name)
        assert a.dtype == np.float32, f"{name} is {a.dtype}"
        np.testing.assert_array_equal(a, e, err_msg=name)
    assert actual.model == expected.model


# --- compressed PLY (PlayCanvas / SuperSplat), formats.md 1.3 -------------------------------------------------

CHUNK_BOUNDS = (
    "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
    "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
)
CHUNK_COLORS = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")


@dataclass
class CompressedParts:
    """Raw element data of a compressed PLY: chunk columns (float32), packed words (uint32), SH bytes."""

    chunks: dict[str, np.ndarray]
    words: dict[str, np.ndarray]
    sh: np.ndarray | None = None  # (N, 9|24|45) uint8

    @property
    def count(self) -> int:
        return int(self.words["packed_position"].shape[0])


def write_compressed_parts(path: Path, parts: CompressedParts, *, comments: tuple[str, ...] = (),
                           trailing: bytes = b"", truncate: int = 0) -> Path:
    """Write raw compressed-PLY elements (chunk, vertex [, sh]) as a binary little-endian file."""
    chunk_names = [n for n in (*CHUNK_BOUNDS, *CHUNK_COLORS) if n in parts.chunks]
    n_chunks = parts.chunks["min_x"].shape[0]
    header = ["ply", "format binary_little_endian 1.0", *(f"comment {c}" for c in comments)]
    header.append(f"element chunk {n_chunks}")
    header += [f"property float {n}" for n in chunk_names]
    header.append(f"element vertex {parts.count}")
    header += [f"property uint {n}" for n in PACKED]
    if parts.sh is not None:
        header.append(f"element sh {parts.count}")
        header += [f"property uchar f_rest_{i}" for i in range(parts.sh.shape[1])]
    header.append("end_header")
    chunk_data = np.stack([parts.chunks[n] for n in chunk_names], axis=1).astype("<f4")
    vertex_data = np.stack([parts.words[n] for n in PACKED], axis=1).astype("<u4")
    body = chunk_data.tobytes() + vertex_data.tobytes()
    if parts.sh is not None:
        body += np.ascontiguousarray(parts.sh, dtype=np.uint8).tobytes()
    data = ("\n".join(header) + "\n").encode() + body + trailing
    if truncate:
        data = data[:-truncate]
    path.write_bytes(data)
    return path


def _pack_unorm(t: np.ndarray, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    return np.clip(np.floor(t * top + 0.5), 0, top).astype(np.uint32)


def _chunk_minmax(values: np.ndarray, n_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-chunk min/max of (N, C) values (as the float32 file will hold them); the last chunk is padded by
    repeating its last row."""
    pad = n_chunks * 256 - values.shape[0]
    padded = np.concatenate([values, np.repeat(values[-1:], pad, axis=0)]).reshape(n_chunks, 256, -1)
    as_stored = [m.astype(np.float32).astype(np.float64) for m in (padded.min(axis=1), padded.max(axis=1))]
    return as_stored[0], as_stored[1]


def _normalized(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(span < 1e-5, 0.0, (values - lo) / np.where(span == 0, 1, span))
    return t


def _pack_111011(t: np.ndarray) -> np.ndarray:
    return (_pack_unorm(t[:, 0], 11) << 21) | (_pack_unorm(t[:, 1], 10) << 11) | _pack_unorm(t[:, 2], 11)


def encode_compressed(splats: SplatSet, *, colors: bool = True) -> CompressedParts:
    """Encode splats the way splat-transform's compressed-PLY writer does (file order, no Morton sort)."""
    n = splats.count
    n_chunks = math.ceil(n / 256)
    index = np.arange(n) // 256
    pos = splats.positions.astype(np.float64)
    scl = np.clip(splats.log_scales.astype(np.float64), -20, 20)
    rgb = 0.5 + SH_C0 * splats.f_dc.astype(np.float64)
    pmin, pmax = _chunk_minmax(pos, n_chunks)
    smin, smax = _chunk_minmax(scl, n_chunks)
    chunks = {}
    for i, axis in enumerate("xyz"):
        chunks[f"min_{axis}"], chunks[f"max_{axis}"] = pmin[:, i], pmax[:, i]
        chunks[f"min_scale_{axis}"], chunks[f"max_scale_{axis}"] = smin[:, i], smax[:, i]
    if colors:
        cmin, cmax = _chunk_minmax(rgb, n_chunks)
        for i, c in enumerate("rgb"):
            chunks[f"min_{c}"], chunks[f"max_{c}"] = cmin[:, i], cmax[:, i]
        rgb = _normalized(rgb, cmin[index], cmax[index])
    position = _pack_111011(_normalized(pos, pmin[index], pmax[index]))
    scale = _pack_111011(_normalized(scl, smin[index], smax[index]))
    alpha = 1.0 / (1.0 + np.exp(-splats.opacity_logits.astype(np.float64)))
    color = (
        (_pack_unorm(rgb[:, 0], 8) << 24) | (_pack_unorm(rgb[:, 1], 8) << 16)
        | (_pack_unorm(rgb[:, 2], 8) << 8) | _pack_unorm(alpha, 8)
    )
    q = splats.rotations.astype(np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    largest = np.argmax(np.abs(q), axis=1)
    q = q * np.where(q[np.arange(n), largest] < 0, -1.0, 1.0)[:, None]
    rotation = (largest.astype(np.uint32) << 30)
    others = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]
    for slot, shift in zip(range(3), (20, 10, 0), strict=True):
        component = q[np.arange(n), others[:, slot]]
        rotation |= _pack_unorm(component * (math.sqrt(2) * 0.5) + 0.5, 10) << shift
    sh = None
    if splats.f_rest.shape[1]:
        sh = np.clip(np.trunc((splats.f_rest.astype(np.float64) / 8 + 0.5) * 256), 0, 255).astype(np.uint8)
    words = {"packed_position": position, "packed_rotation": rotation, "packed_scale": scale,
             "packed_color": color}
    return CompressedParts({k: v.astype(np.float32) for k, v in chunks.items()}, words, sh)
