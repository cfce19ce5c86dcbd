"""A SOG texture's WebP bytes: its size read from the file's own header, then (once the caller agrees) its pixels.

A 34-byte lossless WebP may claim 16383 x 16383 pixels, a gigabyte once decoded. Reading the size first lets the
SOG reader refuse a texture whose size the scene cannot need before a single pixel is decoded.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from sogs_compressor.errors import CorruptSogError

MAX_SIDE = 16383
"""WebP's own dimension limit (libwebp ``WEBP_MAX_DIMENSION``)."""

Image.MAX_IMAGE_PIXELS = MAX_SIDE * MAX_SIDE  # legit SOG textures go up to this; sizes are checked before Pillow

_VP8_START = b"\x9d\x01\x2a"


def _refuse(name: str, reason: str) -> CorruptSogError:
    return CorruptSogError(f"{name}: not a decodable WebP image ({reason})")


def webp_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) from the first chunk's header (VP8L lossless, VP8 lossy or VP8X extended).

    Raises CorruptSogError (naming ``name``) for anything that is not a WebP of at most MAX_SIDE per side.
    """
    if len(data) < 16 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise _refuse(name, f"no RIFF/WEBP header; starts with {data[:12]!r}")
    kind, body = data[12:16], data[20:]
    if kind == b"VP8L" and len(body) >= 5:
        if body[0] != 0x2F:
            raise _refuse(name, "bad VP8L signature")
        bits = int.from_bytes(body[1:5], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif kind == b"VP8 " and len(body) >= 10:
        if body[3:6] != _VP8_START:
            raise _refuse(name, "bad VP8 start code")
        width = int.from_bytes(body[6:8], "little") & 0x3FFF
        height = int.from_bytes(body[8:10], "little") & 0x3FFF
    elif kind == b"VP8X" and len(body) >= 10:
        width = int.from_bytes(body[4:7], "little") + 1
        height = int.from_bytes(body[7:10], "little") + 1
    elif kind in (b"VP8L", b"VP8 ", b"VP8X"):
        raise _refuse(name, f"truncated {kind.decode().strip()} header")
    else:
        raise _refuse(name, f"unknown first chunk {kind!r}")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise _refuse(name, f"header says {width}x{height}; WebP allows 1..{MAX_SIDE} per side")
    return width, height


def decode_rgba(data: bytes, name: str, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 4) uint8 pixels of a WebP whose header said ``size`` (RGB-only images get alpha 255)."""
    try:
        with Image.open(io.BytesIO(data), formats=["WEBP"]) as image:
            if image.size != size:
                raise _refuse(name, f"header says {size[0]}x{size[1]}, the image is {image.size[0]}x{image.size[1]}")
            return np.asarray(image.convert("RGBA"))
    except UnidentifiedImageError:
        raise _refuse(name, "unrecognised image data") from None
    except (OSError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise _refuse(name, str(error) or type(error).__name__) from None
