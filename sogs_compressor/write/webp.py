"""Lossless RGBA WebP through Pillow's libwebp, with ``exact=True`` so colour under alpha 0 survives."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

import numpy as np
from PIL import Image

from sogs_compressor.cpus import usable_cpus


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


class WebpEncoder:
    """Encodes images concurrently from the moment each is submitted (libwebp releases the GIL), one thread per
    image up to the CPUs this process may use, each with its own effort; records what each one cost.

    ``round_trip``: each worker also decodes the bytes it made and checks they give the image back exactly
    (the verifier's first check, done while other textures are still encoding); ``results`` raises
    ``RoundTripError`` otherwise.
    """

    def __init__(self, effort: Effort, max_workers: int | None = None, round_trip: bool = False) -> None:
        self.effort = effort
        self.round_trip = round_trip
        workers = max_workers or min(8, usable_cpus())
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="webp")
        self._futures: dict[str, Future] = {}
        self._created = time.perf_counter()
        self.stats: dict[str, dict] = {}
        """Per texture: method, quality, bytes, when it was submitted (seconds after the encoder was made), seconds
        waiting for a worker, encoding, and checking the round trip."""

    def submit(self, name: str, image: np.ndarray) -> None:
        method, quality = self.effort(name)
        self._futures[name] = self._pool.submit(self._encode, name, image, method, quality, time.perf_counter())

    def _encode(self, name: str, image: np.ndarray, method: int, quality: int, submitted: float) -> bytes:
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
        self.stats[name] = stats
        return data

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
