"""Texture geometry: where splat i lives, and how per-splat rows become an RGBA image and back."""

from __future__ import annotations

import math

import numpy as np

from sogs_compressor.sog.webp import MAX_SIDE


def texture_size(count: int) -> tuple[int, int]:
    """(width, height) of the per-splat textures, splat-transform's rule: multiples of 4, near square."""
    if count < 1:
        raise ValueError("a SOG needs at least one splat")
    width = math.ceil(math.sqrt(count) / 4) * 4
    height = math.ceil(count / width / 4) * 4
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ValueError(f"{count} splats need a {width}x{height} texture, over WebP's {MAX_SIDE} limit")
    return width, height


def rows_to_image(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """Per-splat RGBA rows (N, 4) uint8 -> (height, width, 4) image, row-major, zero padding after N."""
    n = rows.shape[0]
    image = np.zeros((height * width, 4), np.uint8)
    image[:n] = rows
    return image.reshape(height, width, 4)


def image_to_rows(image: np.ndarray, count: int) -> np.ndarray:
    """(height, width, 4) image -> the first ``count`` texels as (count, 4) rows."""
    flat = image.reshape(-1, image.shape[-1])
    if flat.shape[0] < count:
        raise ValueError(f"texture holds {flat.shape[0]} texels, fewer than the {count} splats")
    return flat[:count]


def with_alpha(rgb: np.ndarray, alpha: int | np.ndarray = 255) -> np.ndarray:
    """(N, 3) uint8 + alpha (scalar or (N,)) -> (N, 4) uint8."""
    out = np.empty((rgb.shape[0], 4), np.uint8)
    out[:, :3] = rgb
    out[:, 3] = alpha
    return out
