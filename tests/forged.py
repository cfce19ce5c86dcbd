"""Test helper: real image files whose headers claim something else (sizes, or data that does not decode)."""

from __future__ import annotations

import io
import zlib

from PIL import Image


def webp_claiming(width: int, height: int) -> bytes:
    """A real 1x1 lossless WebP whose VP8L header is changed to claim ``width`` x ``height`` (34 bytes)."""
    buffer = io.BytesIO()
    Image.new("RGBA", (1, 1)).save(buffer, "WEBP", lossless=True)
    data = bytearray(buffer.getvalue())
    at = data.index(b"VP8L") + 9
    bits = int.from_bytes(data[at:at + 4], "little") & ~((1 << 28) - 1)
    data[at:at + 4] = (bits | (width - 1) | ((height - 1) << 14)).to_bytes(4, "little")
    return bytes(data)


def png_claiming(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR (with a matching CRC) claims ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def vp8l_garbage(width: int, height: int) -> bytes:
    """A RIFF/WEBP file with a valid VP8L header for ``width`` x ``height`` and meaningless image data."""
    header = b"\x2f" + ((width - 1) | ((height - 1) << 14) | (1 << 28)).to_bytes(4, "little")
    chunk = b"VP8L" + (len(header) + 16).to_bytes(4, "little") + header + bytes(range(16))
    return b"RIFF" + (4 + len(chunk)).to_bytes(4, "little") + b"WEBP" + chunk
