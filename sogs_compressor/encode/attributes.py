"""Each SOG v2 attribute's encoder next to its decoder (formats.md 2.4-2.8).

Where splat-transform truncates we round, which halves the worst-case error and stays byte-compatible with
every reader (the format fixes the decode formula, not the encoder's rounding).
"""

from __future__ import annotations

import numpy as np

SQRT2 = np.float64(np.sqrt(2.0))


# --- positions: 16-bit, log-transformed, per-axis range (2.4) -----------------------------------------------

def log_transform(values: np.ndarray) -> np.ndarray:
    """sign(v) * ln(|v| + 1): more precision near the origin, where scenes are dense."""
    return np.sign(values) * np.log1p(np.abs(values))


def inverse_log_transform(values: np.ndarray) -> np.ndarray:
    return np.sign(values) * np.expm1(np.abs(values))


def encode_means(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float], list[float]]:
    """Positions (N, 3) -> (low bytes (N, 3), high bytes (N, 3), mins[3], maxs[3]) of the log-domain values."""
    lt = log_transform(positions.astype(np.float64))
    mins = lt.min(axis=0)
    maxs = lt.max(axis=0)
    span = maxs - mins
    safe = np.where(span > 0, span, 1.0)
    q = np.rint((lt - mins) / safe * 65535.0)
    q = np.where(span > 0, q, 0.0)
    q = np.clip(q, 0, 65535).astype(np.uint16)
    low = (q & 0xFF).astype(np.uint8)
    high = (q >> 8).astype(np.uint8)
    return low, high, [float(v) for v in mins], [float(v) for v in maxs]


def decode_means(low: np.ndarray, high: np.ndarray, mins, maxs) -> np.ndarray:
    q = high.astype(np.float64) * 256.0 + low.astype(np.float64)
    mins = np.asarray(mins, np.float64)
    maxs = np.asarray(maxs, np.float64)
    lt = mins + (maxs - mins) * (q / 65535.0)
    return inverse_log_transform(lt).astype(np.float32)


# --- rotations: smallest-three, 8 bits each, largest index in alpha (2.5) -----------------------------------

def normalize_quaternions(rotations: np.ndarray) -> np.ndarray:
    """Unit quaternions (float64); all-zero rows become identity (the sanitizer counts those beforehand)."""
    q = rotations.astype(np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    zero = norm[:, 0] == 0
    q = q / np.where(norm > 0, norm, 1.0)
    q[zero] = (1.0, 0.0, 0.0, 0.0)
    return q


def encode_quats(rotations: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions (w, x, y, z) -> (N, 4) RGBA bytes: three smallest components + 252 + largest index."""
    q = normalize_quaternions(rotations)
    largest = np.argmax(np.abs(q), axis=1)
    n = q.shape[0]
    sign = np.where(q[np.arange(n), largest] < 0, -1.0, 1.0)
    q = q * (sign * SQRT2)[:, None]
    keep = np.ones((n, 4), bool)
    keep[np.arange(n), largest] = False
    others = q[keep].reshape(n, 3)
    rgb = np.clip(np.rint(255.0 * (others * 0.5 + 0.5)), 0, 255).astype(np.uint8)
    out = np.empty((n, 4), np.uint8)
    out[:, :3] = rgb
    out[:, 3] = 252 + largest
    return out


def decode_quats(rgba: np.ndarray) -> np.ndarray:
    """(N, 4) RGBA bytes -> (N, 4) unit quaternions (w, x, y, z); alpha outside 252..255 decodes to identity."""
    n = rgba.shape[0]
    abc = (rgba[:, :3].astype(np.float64) / 255.0 - 0.5) * SQRT2
    d = np.sqrt(np.maximum(0.0, 1.0 - np.sum(abc * abc, axis=1)))
    mode = rgba[:, 3].astype(np.int64) - 252
    valid = (mode >= 0) & (mode <= 3)
    mode = np.where(valid, mode, 0)
    q = np.empty((n, 4), np.float64)
    slot = np.arange(4)[None, :]
    # other slots, in ascending order, take a, b, c
    rank = slot - (slot > mode[:, None])
    q[:] = np.take_along_axis(abc, np.clip(rank, 0, 2), axis=1)
    q[np.arange(n), mode] = d
    q[~valid] = (1.0, 0.0, 0.0, 0.0)
    return q.astype(np.float32)


# --- opacity in sh0's alpha (2.7) ---------------------------------------------------------------------------

def sigmoid(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def encode_opacity(logits: np.ndarray) -> np.ndarray:
    """Opacity logits -> alpha byte round(sigmoid * 255) (NaN -> 0)."""
    alpha = np.nan_to_num(sigmoid(logits) * 255.0, nan=0.0)
    return np.clip(np.rint(alpha), 0, 255).astype(np.uint8)


def decode_opacity_logit(alpha: np.ndarray) -> np.ndarray:
    """Alpha byte -> opacity logit, clamped away from 0 and 1 like splat-transform's reader (finite values)."""
    p = np.clip(alpha.astype(np.float64) / 255.0, 1e-6, 1.0 - 1e-6)
    return np.log(p / (1.0 - p)).astype(np.float32)


# --- codebook-indexed attributes: scales, sh0 colour, shN centroids (2.6-2.8) --------------------------------

def decode_codebook(indices: np.ndarray, codebook) -> np.ndarray:
    return np.asarray(codebook, np.float32)[indices]


# --- shN palette textures (2.8) -------------------------------------------------------------------------------

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
