"""The SH palette (``shN``): centroids of the higher SH bands, their values as labels into a 256-entry
codebook in the centroid texture, and each splat's 16-bit palette label (formats.md 2.8).

The texture encoders and decoders (host, and the labels' device twin for the verifier); the palette itself is
clustered in ``encode.encode_sh_palette``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sogs_compressor.sog.codebook import decode_codebook

if TYPE_CHECKING:
    import torch


def centroid_image(centroid_indices: np.ndarray, coeffs: int) -> np.ndarray:
    """(K, 3*coeffs) uint8 codebook indices (channel-major) -> (ceil(K/64), 64*coeffs, 4) RGBA image."""
    k = centroid_indices.shape[0]
    height = -(-k // 64)
    image = np.zeros((height * 64, coeffs, 4), np.uint8)
    per_channel = centroid_indices.reshape(k, 3, coeffs)
    image[:k, :, 0] = per_channel[:, 0]
    image[:k, :, 1] = per_channel[:, 1]
    image[:k, :, 2] = per_channel[:, 2]
    image[:k, :, 3] = 255
    return image.reshape(height, 64 * coeffs, 4)


def centroids_from_image(image: np.ndarray, count: int, coeffs: int) -> np.ndarray:
    """Inverse of centroid_image: (K, 3*coeffs) uint8 indices of the first ``count`` centroids."""
    height, width, _ = image.shape
    if width != 64 * coeffs:
        raise ValueError(f"shN centroid texture is {width} wide, expected {64 * coeffs} for {coeffs} coefficients")
    if height * 64 < count:
        raise ValueError(f"shN centroid texture holds {height * 64} centroids, fewer than shN.count {count}")
    texels = image.reshape(height * 64, coeffs, 4)[:count]
    return np.concatenate([texels[:, :, 0], texels[:, :, 1], texels[:, :, 2]], axis=1)


def decode_centroids(image: np.ndarray, count: int, coeffs: int, codebook) -> np.ndarray:
    """The centroid texture -> (count, 3*coeffs) float32 SH values through the palette's codebook."""
    return decode_codebook(centroids_from_image(image, count, coeffs), codebook)


def encode_labels(labels: np.ndarray) -> np.ndarray:
    """Palette labels (N,) < 65536 -> (N, 4) RGBA: R = low byte, G = high byte, B = 0, A = 255."""
    labels = labels.astype(np.uint32)
    out = np.zeros((labels.shape[0], 4), np.uint8)
    out[:, 0] = labels & 0xFF
    out[:, 1] = labels >> 8
    out[:, 3] = 255
    return out


def decode_labels(rgba: np.ndarray) -> np.ndarray:
    return rgba[:, 0].astype(np.int64) + 256 * rgba[:, 1].astype(np.int64)


def decode_labels_on_device(rgba: torch.Tensor) -> torch.Tensor:
    """``decode_labels``: palette labels (N,) int64 from R + 256 G."""
    return rgba[:, 0].long() + 256 * rgba[:, 1].long()
