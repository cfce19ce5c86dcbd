"""Lossless RGBA WebP through Pillow's libwebp, with ``exact=True`` so colour under alpha 0 survives."""

from __future__ import annotations

import io
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from PIL import Image


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


class WebpEncoder:
    """Encodes images concurrently, one thread per image (libwebp releases the GIL)."""

    def __init__(self, method: int, quality: int, max_workers: int = 8) -> None:
        self.method = method
        self.quality = quality
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="webp")
        self._futures: dict[str, Future] = {}

    def submit(self, name: str, image: np.ndarray) -> None:
        self._futures[name] = self._pool.submit(encode_webp, image, self.method, self.quality)

    def results(self) -> dict[str, bytes]:
        """Wait for every submitted image; their bytes by name, in submission order."""
        try:
            return {name: future.result() for name, future in self._futures.items()}
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def cancel(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
