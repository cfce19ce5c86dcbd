"""Lossless RGBA WebP through Pillow's libwebp, with ``exact=True`` so colour under alpha 0 survives."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

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


class WebpEncoder:
    """Encodes images concurrently from the moment each is submitted (libwebp releases the GIL), one thread per
    image up to the CPUs this process may use, each with its own effort; records what each one cost."""

    def __init__(self, effort: Effort, max_workers: int | None = None) -> None:
        self.effort = effort
        workers = max_workers or min(8, usable_cpus())
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="webp")
        self._futures: dict[str, Future] = {}
        self.stats: dict[str, dict] = {}
        """Per texture: method, quality, bytes, seconds encoding, seconds waiting for a worker."""

    def submit(self, name: str, image: np.ndarray) -> None:
        method, quality = self.effort(name)
        self._futures[name] = self._pool.submit(self._encode, name, image, method, quality, time.perf_counter())

    def _encode(self, name: str, image: np.ndarray, method: int, quality: int, submitted: float) -> bytes:
        started = time.perf_counter()
        data = encode_webp(image, method, quality)
        self.stats[name] = {"method": method, "quality": quality, "bytes": len(data),
                            "encode_s": round(time.perf_counter() - started, 4),
                            "queued_s": round(started - submitted, 4)}
        return data

    def results(self) -> dict[str, bytes]:
        """Wait for every submitted image; their bytes by name, in submission order."""
        try:
            return {name: future.result() for name, future in self._futures.items()}
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def cancel(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
