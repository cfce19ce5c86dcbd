"""Test helper: where each field of a ZIP's local headers, central directory and end record lies, so tests and
the fuzzer can change one field of a real bundle (flags, method, sizes, CRC, offsets) and nothing else."""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass

LOCAL_FIELDS = {
    "flags": (6, "<H"), "method": (8, "<H"), "crc": (14, "<I"), "compressed": (18, "<I"), "size": (22, "<I"),
    "name_length": (26, "<H"), "extra_length": (28, "<H"),
}
CENTRAL_FIELDS = {
    "flags": (8, "<H"), "method": (10, "<H"), "crc": (16, "<I"), "compressed": (20, "<I"), "size": (24, "<I"),
    "name_length": (28, "<H"), "extra_length": (30, "<H"), "comment_length": (32, "<H"), "offset": (42, "<I"),
}
END_FIELDS = {
    "disk_entries": (8, "<H"), "entries": (10, "<H"), "directory_size": (12, "<I"), "directory_offset": (16, "<I"),
    "comment_length": (20, "<H"),
}
_END_SIGNATURE = b"PK\x05\x06"


@dataclass(frozen=True)
class Entry:
    """One member: offsets of its local header, its central-directory record and its (compressed) data."""

    name: str
    local: int
    central: int
    data: int
    compressed: int


def layout(data: bytes) -> tuple[list[Entry], int]:
    """The entries of a well-formed ZIP (in central-directory order) and the offset of its end record."""
    end = data.rindex(_END_SIGNATURE)
    central = struct.unpack_from("<I", data, end + 16)[0]
    entries = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
            entries.append(Entry(info.filename, info.header_offset, central,
                                 info.header_offset + 30 + name_length + extra_length, info.compress_size))
            central += 46 + sum(struct.unpack_from("<HHH", data, central + 28))
    return entries, end


def set_field(buffer: bytearray, base: int, field: tuple[int, str], value: int) -> None:
    """Write ``value`` into ``field`` (offset, struct format) of the header at ``base`` (wrapped to the field)."""
    offset, fmt = field
    bits = 8 * struct.calcsize(fmt)
    struct.pack_into(fmt, buffer, base + offset, value % (1 << bits))


def set_entry_field(buffer: bytearray, entry: Entry, name: str, value: int) -> None:
    """Set a field in both the local header and the central record (where it exists in each)."""
    if name in LOCAL_FIELDS:
        set_field(buffer, entry.local, LOCAL_FIELDS[name], value)
    if name in CENTRAL_FIELDS:
        set_field(buffer, entry.central, CENTRAL_FIELDS[name], value)
