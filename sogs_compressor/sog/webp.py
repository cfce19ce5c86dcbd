"""A SOG texture's lossless WebP, both ways.

Writing: lossless RGBA through Pillow's libwebp, with ``exact=True`` so colour under alpha 0 survives; the
``WebpEncoder`` encodes a SOG's textures concurrently and can check each round trip.

Reading untrusted files: the size is read from the file's own header, then (once the caller agrees) its pixels.
A 34-byte lossless WebP may claim 16383 x 16383 pixels, a gigabyte once decoded. Reading the size first lets the
SOG reader refuse a texture whose size the scene cannot need before a single pixel is decoded.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

import numpy as np
from PIL import Image, UnidentifiedImageError

from sogs_compressor.cpus import usable_cpus
from sogs_compressor.errors import CorruptSogError
from sogs_compressor.host_memory import available_memory_bytes

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


# --- writing -----------------------------------------------------------------------------------------------

def encode_webp(image: np.ndarray, method: int = 4, quality: int = 50) -> bytes:
    """(H, W, 4) uint8 -> lossless WebP bytes. ``quality`` is libwebp's lossless effort (0-100), not loss."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"expected an (H, W, 4) uint8 image, got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(image, "RGBA").save(
        buffer, format="WEBP", lossless=True, exact=True, method=method, quality=quality
    )
    return buffer.getvalue()


def decode_webp(data: bytes) -> np.ndarray:
    """WebP bytes -> (H, W, 4) uint8 (RGB-only images get alpha 255, as browsers decode them)."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format != "WEBP":
            raise ValueError(f"not a WebP image ({image.format})")
        return np.asarray(image.convert("RGBA"))


Effort = Callable[[str], tuple[int, int]]
"""A texture's file name -> the (method, quality) its lossless WebP is encoded with."""


def uniform_effort(method: int, quality: int) -> Effort:
    """The same effort for every texture."""
    return lambda name: (method, quality)


class RoundTripError(ValueError):
    """A WebP that does not decode to the image it was encoded from."""


WORKING_BYTES_PER_PIXEL = 32
"""What libwebp's lossless encoder holds beside the image while it works, about: 23-32 bytes per pixel measured on
real textures (bench/RESULTS.md, session 15), so seven 10M-pixel textures at once hold over 2 GB."""
MEMORY_RESERVE_BYTES = 1 << 30
"""Memory left to everything else when the encoders size themselves by what is available."""


class EncodeMemory:
    """Bytes held by the WebP encodes in progress in this process, across every ``WebpEncoder``: a Streamed SOG
    encodes one chunk's textures while the next chunk's are submitted, and a job may run scenes side by side, so
    one encoder's budget must count the others' encodes too."""

    def __init__(self) -> None:
        self.held = 0
        self.room = threading.Condition()

    def acquire(self, need: int, budget: int | None) -> None:
        """Wait until ``need`` fits beside what is held within ``budget`` (None: no limit); an encode always
        runs when nothing is held."""
        with self.room:
            self.room.wait_for(lambda: budget is None or self.held == 0 or self.held + need <= budget)
            self.held += need

    def release(self, need: int) -> None:
        with self.room:
            self.held -= need
            self.room.notify_all()


ENCODE_MEMORY = EncodeMemory()
"""The process's one ledger of WebP encode memory."""


class WebpEncoder:
    """Encodes images concurrently from the moment each is submitted (libwebp releases the GIL), one thread per
    image up to the CPUs this process may use, each with its own effort; records what each one cost.

    ``round_trip``: each worker also decodes the bytes it made and checks they give the image back exactly
    (the verifier's first check, done while other textures are still encoding); ``results`` raises
    ``RoundTripError`` otherwise.

    ``memory_budget``: bytes the encodes in progress may hold together (``WORKING_BYTES_PER_PIXEL`` each pixel),
    counting those of every encoder in the process (``ENCODE_MEMORY``); an encode waits until it fits, and one
    always runs. Default: what the host or the container has available when the encoder is made, less
    ``MEMORY_RESERVE_BYTES`` (no limit where that cannot be read). On a large host it never binds; in a tight
    container it keeps the encoders from taking the process past its limit.
    """

    def __init__(self, effort: Effort, max_workers: int | None = None, round_trip: bool = False,
                 memory_budget: int | None = None) -> None:
        self.effort = effort
        self.round_trip = round_trip
        workers = max_workers or min(8, usable_cpus())
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="webp")
        self._futures: dict[str, Future] = {}
        self._created = time.perf_counter()
        if memory_budget is None:
            available = available_memory_bytes()
            memory_budget = None if available is None else max(0, available - MEMORY_RESERVE_BYTES)
        self.memory_budget = memory_budget
        self._memory = ENCODE_MEMORY
        self.stats: dict[str, dict] = {}
        """Per texture: method, quality, bytes, when it was submitted (seconds after the encoder was made), seconds
        waiting for a worker and for memory, encoding, and checking the round trip."""

    def submit(self, name: str, image: np.ndarray) -> None:
        method, quality = self.effort(name)
        self._futures[name] = self._pool.submit(self._encode, name, image, method, quality, time.perf_counter())

    def _encode(self, name: str, image: np.ndarray, method: int, quality: int, submitted: float) -> bytes:
        need = WORKING_BYTES_PER_PIXEL * image.shape[0] * image.shape[1]
        self._memory.acquire(need, self.memory_budget)  # waits until it fits beside every encode running
        try:
            started = time.perf_counter()
            data = encode_webp(image, method, quality)
            encoded = time.perf_counter()
            stats = {"method": method, "quality": quality, "bytes": len(data),
                     "submitted_s": round(submitted - self._created, 4), "queued_s": round(started - submitted, 4),
                     "encode_s": round(encoded - started, 4)}
            if self.round_trip:
                if not np.array_equal(decode_webp(data), image):
                    raise RoundTripError(f"the WebP of {name} does not decode to the texture it was encoded from")
                stats["round_trip_s"] = round(time.perf_counter() - encoded, 4)
            stats["done_s"] = round(time.perf_counter() - self._created, 4)
            self.stats[name] = stats
            return data
        finally:
            self._memory.release(need)

    def results(self, progress: Callable[[float], None] | None = None) -> dict[str, bytes]:
        """Wait for every submitted image; their bytes by name, in submission order. ``progress(fraction)`` hears
        the share of textures encoded each time one finishes."""
        try:
            total = len(self._futures)
            for count, future in enumerate(as_completed(self._futures.values()), start=1):
                future.result()  # the first failure, as soon as it happens
                if progress is not None:
                    progress(count / total)
            return {name: future.result() for name, future in self._futures.items()}
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def cancel(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
