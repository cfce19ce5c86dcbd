"""PLY header parsing: the one place that turns the text before ``end_header`` into element layouts.

The header is read with a hard size cap, so a file that is not a PLY (or a header that never ends) costs at most
1 MiB of reading and never an allocation sized by anything the file claims.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from sogs_compressor.errors import NotAPlyError, UnsupportedFormatError

MAX_HEADER_BYTES = 1 << 20
"""Headers longer than this are refused (real 3DGS headers are a few KiB)."""

FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
"""PLY ``format`` names and the numpy byte-order character of their data (None: text)."""

SCALAR_TYPES = {
    "char": "i1", "int8": "i1",
    "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4",
    "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}
"""Every PLY scalar type name (and its sized alias) -> numpy type code without byte order."""

_COUNT_RE = re.compile(r"^[0-9]+$")
MAX_COUNT_DIGITS = 18
"""Element counts are parsed only up to this many significant digits (no file holds 10**18 rows); longer ones
are refused before ``int()`` sees them, whose cost grows with the digits and which refuses over 4300."""


@dataclass(frozen=True)
class PlyProperty:
    """One property line. ``type`` is a numpy code (``f4``); list properties also carry ``count_type``."""

    name: str
    type: str
    count_type: str | None = None

    @property
    def is_list(self) -> bool:
        return self.count_type is not None


@dataclass
class PlyElement:
    name: str
    count: int
    properties: list[PlyProperty] = field(default_factory=list)

    @property
    def has_lists(self) -> bool:
        return any(p.is_list for p in self.properties)

    @property
    def stride(self) -> int:
        """Bytes per binary record (only meaningful without list properties)."""
        return sum(np.dtype(p.type).itemsize for p in self.properties)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.properties]

    def dtype(self, byte_order: str) -> np.dtype:
        """Packed structured dtype of one binary record (fixed-size elements only)."""
        return np.dtype([(p.name, byte_order + p.type) for p in self.properties])


@dataclass
class PlyHeader:
    """What the header says: format, elements in file order, comments, and where the data starts."""

    format: str
    version: str
    elements: list[PlyElement]
    comments: list[str]
    obj_info: list[str]
    data_offset: int

    @property
    def byte_order(self) -> str | None:
        """``<`` or ``>`` for binary data, None for ascii."""
        return FORMATS[self.format]

    def element(self, name: str) -> PlyElement | None:
        for element in self.elements:
            if element.name == name:
                return element
        return None


def _read_header_lines(f: BinaryIO) -> tuple[list[str], int]:
    """Header lines (without line endings) up to and including ``end_header``, and the bytes they span."""
    first = f.readline(8)
    if first.rstrip(b"\r\n") != b"ply" or not first.endswith(b"\n"):
        raise NotAPlyError("not a PLY file (it does not start with a 'ply' line)")
    consumed = len(first)
    lines = ["ply"]
    while True:
        line = f.readline(MAX_HEADER_BYTES - consumed + 1)
        consumed += len(line)
        if consumed > MAX_HEADER_BYTES:
            raise NotAPlyError(f"PLY header is larger than {MAX_HEADER_BYTES} bytes (no end_header found)")
        if not line.endswith(b"\n"):
            raise NotAPlyError("PLY header never ends (no 'end_header' line before the end of the file)")
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")  # tolerate non-ASCII comments
        lines.append(text)
        if text.strip() == "end_header":
            return lines, consumed


def _scalar_type(name: str, where: str) -> str:
    code = SCALAR_TYPES.get(name)
    if code is None:
        raise UnsupportedFormatError(f"unknown PLY property type {name!r} in {where}")
    return code


def _parse_property(words: list[str], element: PlyElement, line_no: int) -> PlyProperty:
    where = f"header line {line_no} ('{' '.join(words)}')"
    if len(words) == 5 and words[1] == "list":
        prop = PlyProperty(words[4], _scalar_type(words[3], where), _scalar_type(words[2], where))
    elif len(words) == 3:
        prop = PlyProperty(words[2], _scalar_type(words[1], where))
    else:
        raise NotAPlyError(f"malformed PLY property at {where}")
    if prop.name in element.names:
        raise NotAPlyError(f"PLY element '{element.name}' declares property '{prop.name}' twice")
    return prop


def _element_count(digits: str, name: str) -> int:
    """The count of an element line (already known to be all digits); UnsupportedFormatError when too large."""
    significant = digits.lstrip("0")
    if len(significant) > MAX_COUNT_DIGITS:
        raise UnsupportedFormatError(
            f"PLY element '{name}' count has {len(significant)} digits; counts of 10^{MAX_COUNT_DIGITS} "
            "or more are not supported"
        )
    return int(significant or "0")


def parse_ply_header(f: BinaryIO) -> PlyHeader:
    """Read and validate a PLY header from a binary file positioned at its start.

    Raises NotAPlyError (not a PLY, malformed or endless header) or UnsupportedFormatError (unknown format or
    property type). Element counts are only parsed here; checking them against the file size is the reader's job.
    """
    lines, data_offset = _read_header_lines(f)
    fmt = version = None
    elements: list[PlyElement] = []
    comments: list[str] = []
    obj_info: list[str] = []
    for line_no, text in enumerate(lines[1:-1], start=2):
        words = text.split()
        if not words:
            continue
        keyword = words[0]
        if keyword == "comment":
            comments.append(text.strip()[len("comment"):].strip())
        elif keyword == "obj_info":
            obj_info.append(text.strip()[len("obj_info"):].strip())
        elif keyword == "format":
            if len(words) != 3:
                raise NotAPlyError(f"malformed PLY format line {line_no}: {text.strip()!r}")
            if words[1] not in FORMATS:
                raise UnsupportedFormatError(
                    f"unsupported PLY format {words[1]!r} (expected ascii, binary_little_endian or binary_big_endian)"
                )
            if not words[2].startswith("1"):
                raise UnsupportedFormatError(f"unsupported PLY version {words[2]!r} (expected 1.0)")
            fmt, version = words[1], words[2]
        elif keyword == "element":
            if len(words) != 3 or not _COUNT_RE.match(words[2]):
                raise NotAPlyError(f"malformed PLY element line {line_no}: {text.strip()!r}")
            if any(e.name == words[1] for e in elements):
                raise UnsupportedFormatError(f"PLY header declares element '{words[1]}' twice")
            elements.append(PlyElement(words[1], _element_count(words[2], words[1])))
        elif keyword == "property":
            if not elements:
                raise NotAPlyError(f"PLY property before any element at header line {line_no}")
            elements[-1].properties.append(_parse_property(words, elements[-1], line_no))
        else:
            raise NotAPlyError(f"unknown PLY header keyword {keyword!r} at line {line_no}")
    if fmt is None:
        raise NotAPlyError("PLY header has no 'format' line")
    return PlyHeader(fmt, version, elements, comments, obj_info, data_offset)


def is_compressed_header(header: PlyHeader) -> bool:
    """True for a compressed PLY: a ``chunk`` element and a vertex element of packed words."""
    vertex = header.element("vertex")
    return header.element("chunk") is not None and vertex is not None and "packed_position" in vertex.names
