"""Standard 3DGS PLY reader (binary little/big-endian and ascii) -> SplatSet.

Everything the header promises is checked against the file before the data is read, and binary data is read with
structured ``np.fromfile`` calls of bounded size (the file's size is checked first), each chunk gathered
straight into the columns by name.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sogs_compressor.errors import (
    EmptySceneError,
    InputNotFoundError,
    MissingPropertiesError,
    NotAPlyError,
    ShCountError,
    SizeMismatchError,
    SogsError,
    UnsupportedFormatError,
)
from sogs_compressor.read import Scene, input_path
from sogs_compressor.read.ply_header import PlyElement, PlyHeader, is_compressed_header, parse_ply_header
from sogs_compressor.splats import COEFFS_PER_DEGREE, SplatSet

REQUIRED = (
    "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "rot_0", "rot_1", "rot_2", "rot_3",
)
"""Properties a 3DGS vertex element must have (``scale_2`` is optional: without it the file is 2DGS)."""

KNOWN = frozenset((*REQUIRED, "scale_2", "nx", "ny", "nz"))
_F_REST = re.compile(r"^f_rest_0*([0-9]{1,9})$")
"""An ``f_rest_*`` name and its index without leading zeros (longer indices are no SH property: never parsed)."""
_REST_COUNTS = tuple(3 * k for k in COEFFS_PER_DEGREE)
_NATIVE = "<" if sys.byteorder == "little" else ">"
_MODE_TO_MODEL = {"default": "default", "mip": "antialiased", "2dgs": "2dgs"}


def open_input(path: str | os.PathLike) -> tuple[Path, BinaryIO, int]:
    """Open a file for binary reading: (path, file, size); InputNotFoundError when missing or unreadable."""
    p = input_path(path)
    if p.is_dir():
        raise NotAPlyError(f"{p} is a folder, not a PLY file")
    try:
        f = open(p, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as error:
        raise InputNotFoundError(f"cannot read {p}: {error.strerror or error}") from None
    return p, f, os.fstat(f.fileno()).st_size


def model_from_comments(comments: list[str]) -> str:
    """Brush ``SplatRenderMode: default|mip|2dgs`` and Postshot ``antialiased 0|1`` (last match wins, like ST)."""
    model = "default"
    for comment in comments:
        lower = comment.strip().lower()
        if lower.startswith("splatrendermode:"):
            model = _MODE_TO_MODEL.get(lower[len("splatrendermode:"):].strip(), model)
        elif lower.startswith("antialiased "):
            value = lower[len("antialiased "):].strip()
            model = {"1": "antialiased", "0": "default"}.get(value, model)
    return model


def rest_names(element: PlyElement) -> list[str]:
    """The element's own ``f_rest_*`` property names in index order (``f_rest_08`` is index 8, as written).

    ShCountError unless there are 0/9/24/45 of them with indices 0..3K-1, each once.
    """
    by_index: dict[int, str] = {}
    for name in element.names:
        m = _F_REST.match(name)
        if m is None:
            continue
        index = int(m.group(1))
        if index in by_index:
            raise ShCountError(f"PLY properties {by_index[index]} and {name} are both f_rest index {index}")
        by_index[index] = name
    if len(by_index) not in _REST_COUNTS:
        raise ShCountError(f"PLY has {len(by_index)} f_rest_* properties; expected 0, 9, 24 or 45 (SH degree 0-3)")
    if sorted(by_index) != list(range(len(by_index))):
        missing = min(set(range(len(by_index))) - set(by_index))
        raise ShCountError(
            f"PLY f_rest_* indices are not contiguous from 0: f_rest_{missing} is missing ({len(by_index)} found)"
        )
    return [by_index[i] for i in range(len(by_index))]


def vertex_element(header: PlyHeader) -> PlyElement:
    """The vertex element, checked for lists and required properties (every missing one is named)."""
    vertex = header.element("vertex")
    if vertex is None:
        names = ", ".join(e.name for e in header.elements) or "none"
        raise MissingPropertiesError(f"PLY has no 'vertex' element (elements: {names})")
    lists = [p.name for p in vertex.properties if p.is_list]
    if lists:
        raise UnsupportedFormatError(f"PLY vertex element has list properties, which 3DGS files never use: {', '.join(lists)}")
    missing = [name for name in REQUIRED if name not in vertex.names]
    if missing:
        raise MissingPropertiesError(f"PLY vertex element is missing required properties: {', '.join(missing)}")
    return vertex


def binary_offsets(header: PlyHeader, file_size: int) -> dict[str, int]:
    """Byte offset of every element's data; SizeMismatchError unless the elements fill the file exactly."""
    offsets, offset = {}, header.data_offset
    for element in header.elements:
        if element.has_lists and element.count:
            lists = ", ".join(p.name for p in element.properties if p.is_list)
            raise UnsupportedFormatError(
                f"PLY element '{element.name}' has list properties ({lists}) whose size cannot be known "
                "without parsing them; binary files with such elements are not supported"
            )
        offsets[element.name] = offset
        offset += element.count * element.stride
    if offset != file_size:
        detail = ", ".join(f"{e.count} {e.name} x {e.stride} B" for e in header.elements)
        what = "truncated" if offset > file_size else "has trailing bytes"
        raise SizeMismatchError(
            f"PLY file {what}: header ({header.data_offset} B) + {detail} = {offset} bytes expected, "
            f"file has {file_size} bytes"
        )
    return offsets


ASCII_CHUNK_VALUES = 1 << 20
"""ASCII vertex values are parsed this many at a time, so the token objects alive at once stay bounded."""


def _ascii_rows(f: BinaryIO, header: PlyHeader, vertex: PlyElement) -> np.ndarray:
    """The vertex rows of an ascii PLY as an (N, P) float32 array (one row per line, checked line counts).

    Two streaming passes: the first counts the data lines (so nothing is sized from a count the file does not
    back), the second parses the vertex lines a chunk at a time, each token on its own (float64, then rounded to
    float32 as a binary file would store it). Memory follows the splat count, never the number of tokens times
    the longest token.
    """
    f.seek(header.data_offset)
    found = sum(1 for line in f if not line.isspace())
    expected = sum(e.count for e in header.elements)
    if found != expected:
        raise SizeMismatchError(
            f"ascii PLY has {found} data lines, header expects {expected} "
            f"({', '.join(f'{e.count} {e.name}' for e in header.elements)})"
        )
    start = 0
    for element in header.elements:
        if element is vertex:
            break
        start += element.count
    f.seek(header.data_offset)
    lines = itertools.islice((line for line in f if not line.isspace()), start, None)
    width = len(vertex.properties)
    values = np.empty((vertex.count, width), np.float32)
    rows_per_chunk = max(1, ASCII_CHUNK_VALUES // max(1, width))
    for first in range(0, vertex.count, rows_per_chunk):
        rows = min(rows_per_chunk, vertex.count - first)
        tokens = b" ".join(itertools.islice(lines, rows)).split()
        if len(tokens) != rows * width:
            raise SizeMismatchError(
                f"ascii PLY vertex rows {first}-{first + rows - 1} hold {len(tokens)} values, "
                f"expected {rows} rows x {width} properties"
            )
        try:
            parsed = np.fromiter(map(float, tokens), np.float64, len(tokens))
        except ValueError:
            raise NotAPlyError("ascii PLY vertex data holds a value that is not a number") from None
        with np.errstate(over="ignore"):  # beyond float32: inf, as a float32 reader stores it; sanitize decides
            values[first:first + rows] = parsed.reshape(rows, width)
    return values


CHUNK_BYTES = 16 << 20
"""Binary vertex data is read this many bytes of records at a time and gathered straight into the columns, so
the raw records never exist in memory next to the whole gathered set."""


def _binary_splats(
    f: BinaryIO, header: PlyHeader, vertex: PlyElement, offset: int, rest: list[str], model: str
) -> SplatSet:
    """The vertex records, read chunk by chunk (sizes already checked) and gathered into float32 columns.

    Two reused chunk buffers: a reader thread fills one while the other is gathered (file reads and numpy
    copies both release the GIL), and no chunk pays for fresh pages.
    """
    f.seek(offset)
    dtype = vertex.dtype(header.byte_order)
    groups = column_groups(vertex.names, rest)
    out = {field: np.empty((vertex.count, len(names)), np.float32) for field, names in groups.items()}
    rows = max(1, min(vertex.count, CHUNK_BYTES // max(1, dtype.itemsize)))
    buffers = [np.empty(rows * dtype.itemsize, np.uint8) for _ in range(2 if vertex.count > rows else 1)]
    starts = range(0, vertex.count, rows)

    def read_chunk(index: int) -> np.ndarray:
        count = min(rows, vertex.count - starts[index])
        raw = buffers[index % len(buffers)][: count * dtype.itemsize]
        filled = _read_into(f, raw)
        if filled != raw.size:
            got = starts[index] + filled // dtype.itemsize
            raise SizeMismatchError(f"PLY file ended early: read {got} of {vertex.count} vertices")
        records = raw.view(dtype)
        return _to_native(records) if header.byte_order != _NATIVE else records

    with ThreadPoolExecutor(1, thread_name_prefix="ply-read") as reader:
        pending = reader.submit(read_chunk, 0)
        for index, start in enumerate(starts):
            records = pending.result()
            if index + 1 < len(starts):
                pending = reader.submit(read_chunk, index + 1)
            columns = _Columns(records, vertex.names)
            for field, names in groups.items():
                columns.take(names, out=out[field][start:start + records.shape[0]])
    return splats_from_groups(out, model)


def _read_into(f: BinaryIO, buffer: np.ndarray) -> int:
    """Fill ``buffer`` from the file; the number of bytes read (short only at the end of the file)."""
    view = memoryview(buffer)
    filled = 0
    while filled < view.nbytes:
        got = f.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def _to_native(records: np.ndarray) -> np.ndarray:
    """Byte-swap records in place (no second copy of the data) and view them with native field types."""
    types = {records.dtype.fields[name][0] for name in records.dtype.names}
    if len(types) == 1:
        records.view(types.pop()).byteswap(inplace=True)  # one flat swap: far faster than field by field
    else:
        records.byteswap(inplace=True)
    return records.view(records.dtype.newbyteorder())


class _Columns:
    """Gathers named columns into float32 arrays, whatever the record layout (structured or 2-D)."""

    def __init__(self, data: np.ndarray, names: list[str]):
        self.index = {name: i for i, name in enumerate(names)}
        self.data = data
        self.matrix = self._uniform_matrix(data)

    @staticmethod
    def _uniform_matrix(data: np.ndarray) -> np.ndarray | None:
        """A 2-D (N, P) view when every field has one dtype (the usual all-float file): gathers become block copies."""
        if data.dtype.names is None:
            return data
        types = {data.dtype.fields[name][0] for name in data.dtype.names}
        if len(types) != 1:
            return None
        (base,) = types
        if base.isnative:
            base = np.dtype(base.char)  # canonical native type: numpy's fast copy loops skip explicit '<f4'
        return data.view(base).reshape(data.shape[0], len(data.dtype.names))

    def take(self, names: list[str], out: np.ndarray | None = None) -> np.ndarray:
        """An (N, len(names)) float32 array (or ``out`` filled); runs of adjacent source columns are block copies."""
        if out is None:
            out = np.empty((self.data.shape[0], len(names)), np.float32)
        with np.errstate(over="ignore"):  # doubles beyond float32 become inf, as a float32 reader stores them
            if self.matrix is None:
                for j, name in enumerate(names):
                    out[:, j] = self.data[name]
                return out
            for start, source, length in _runs([self.index[n] for n in names]):
                out[:, start:start + length] = self.matrix[:, source:source + length]
        return out


def _runs(indices: list[int]) -> list[tuple[int, int, int]]:
    """(output start, source start, length) of maximal runs where consecutive outputs read consecutive sources."""
    runs: list[tuple[int, int, int]] = []
    for j, i in enumerate(indices):
        if runs and runs[-1][1] + runs[-1][2] == i:
            runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((j, i, 1))
    return runs


def column_groups(names: list[str], rest: list[str]) -> dict[str, list[str]]:
    """Which PLY properties make up each SplatSet field (``scale_2`` only when the file has it)."""
    scales = ["scale_0", "scale_1", "scale_2"] if "scale_2" in names else ["scale_0", "scale_1"]
    return {
        "positions": ["x", "y", "z"],
        "log_scales": scales,
        "rotations": ["rot_0", "rot_1", "rot_2", "rot_3"],
        "opacity_logits": ["opacity"],
        "f_dc": ["f_dc_0", "f_dc_1", "f_dc_2"],
        "f_rest": rest,
    }


def splats_from_groups(fields: dict[str, np.ndarray], model: str) -> SplatSet:
    """Assemble a SplatSet from gathered column groups; two scale columns give flat (-inf) 2DGS splats."""
    scales = fields["log_scales"]
    if scales.shape[1] == 2:
        flat = np.full((scales.shape[0], 1), -np.inf, np.float32)
        scales = np.concatenate([scales, flat], axis=1)
        model = "2dgs"
    return SplatSet(
        positions=fields["positions"],
        log_scales=scales,
        rotations=fields["rotations"],
        opacity_logits=fields["opacity_logits"].reshape(-1),
        f_dc=fields["f_dc"],
        f_rest=fields["f_rest"],
        model=model,
    )


def header_facts(header: PlyHeader, vertex: PlyElement, rest: list[str]) -> dict:
    """Format-specific facts for reports: encoding, comments, extra properties, other elements."""
    known = KNOWN.union(rest)
    return {
        "encoding": header.format,
        "comments": list(header.comments),
        "extra_properties": [name for name in vertex.names if name not in known],
        "property_types": sorted({p.type for p in vertex.properties}),
        "other_elements": [{"name": e.name, "count": e.count} for e in header.elements if e is not vertex],
        "has_normals": all(n in vertex.names for n in ("nx", "ny", "nz")),
    }


def _refuse_empty(vertex: PlyElement, path: Path) -> None:
    if vertex.count == 0:
        raise EmptySceneError(f"{path} holds zero splats")


def sh_rest_count_hint(path: str | os.PathLike) -> int | None:
    """The number of ``f_rest_*`` properties a standard PLY's header declares, or None (not a readable standard
    PLY). Reads only the header and never raises: a hint for work that can start before the file is read."""
    try:
        with open(path, "rb") as f:
            header = parse_ply_header(f)
        if is_compressed_header(header):
            return None
        return len(rest_names(vertex_element(header)))
    except (OSError, SogsError):
        return None


def read_ply(path: str | os.PathLike) -> Scene:
    """Read a standard 3DGS PLY into a Scene (format ``ply``); compressed PLYs are handed to their reader."""
    p, f, size = open_input(path)
    with f:
        header = parse_ply_header(f)
        if is_compressed_header(header):  # its own reader (read/compressed_ply.py), found by the format
            f.close()
            from sogs_compressor.read import read_scene

            return read_scene(p)
        vertex = vertex_element(header)
        rest = rest_names(vertex)
        model = model_from_comments(header.comments)
        if header.byte_order is None:
            data = _ascii_rows(f, header, vertex)
            _refuse_empty(vertex, p)
            columns = _Columns(data, vertex.names)
            splats = splats_from_groups(
                {field: columns.take(names) for field, names in column_groups(vertex.names, rest).items()}, model)
        else:
            offsets = binary_offsets(header, size)
            _refuse_empty(vertex, p)
            splats = _binary_splats(f, header, vertex, offsets["vertex"], rest, model)
    return Scene(splats=splats, format="ply", path=str(p), bytes=size, header=header_facts(header, vertex, rest))
