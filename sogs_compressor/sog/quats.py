"""Rotations (``quats``): smallest-three, 8 bits each, the largest component's index in alpha (formats.md 2.5).

The host encoder, its device twin and the decoders (host, and device for the verifier).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SQRT2 = np.float64(np.sqrt(2.0))

OTHER_SLOTS = ((1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2))
"""Quaternion slots stored in RGB, ascending, for each largest-component index."""


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


def encode_quats_on_device(rotations: np.ndarray, device: torch.device) -> np.ndarray:
    """``encode_quats`` on ``device``; all IEEE-exact operations in the reference's order."""
    import torch

    from sogs_compressor.sog.device_arrays import to_device

    q = to_device(rotations, device)
    if q.shape[0] == 0 or not bool(torch.isfinite(q).all()):
        return encode_quats(rotations)
    # np.linalg.norm(axis=1) is sqrt of the left-to-right sum of squares for 4 components.
    squares = q * q
    norm = torch.sqrt(((squares[:, 0] + squares[:, 1]) + squares[:, 2]) + squares[:, 3])[:, None]
    zero = norm[:, 0] == 0
    q = q / torch.where(norm > 0, norm, 1.0)
    q[zero] = torch.tensor((1.0, 0.0, 0.0, 0.0), dtype=q.dtype, device=device)
    largest = torch.argmax(q.abs(), dim=1)  # first of equal components, like numpy
    sign = torch.where(q.gather(1, largest[:, None])[:, 0] < 0, -1.0, 1.0)
    q = q * (sign * float(SQRT2))[:, None]
    others = q.gather(1, torch.tensor(OTHER_SLOTS, device=device)[largest])
    rgb = torch.clamp(torch.round(255.0 * (others * 0.5 + 0.5)), 0, 255).to(torch.uint8)
    return torch.cat([rgb, (252 + largest).to(torch.uint8)[:, None]], dim=1).cpu().numpy()


def decode_quats_on_device(rgba: torch.Tensor) -> torch.Tensor:
    """``decode_quats`` on an (N, 4) uint8 tensor: unit quaternions (w, x, y, z), float32."""
    import torch

    abc = (rgba[:, :3].double() / 255.0 - 0.5) * float(SQRT2)
    squares = abc * abc
    d = torch.sqrt(torch.clamp(1.0 - ((squares[:, 0] + squares[:, 1]) + squares[:, 2]), min=0.0))
    mode = rgba[:, 3].long() - 252
    valid = (mode >= 0) & (mode <= 3)
    mode = torch.where(valid, mode, 0)
    slot = torch.arange(4, device=rgba.device)[None, :]
    rank = torch.clamp(slot - (slot > mode[:, None]).long(), 0, 2)
    q = abc.gather(1, rank)
    q.scatter_(1, mode[:, None], d[:, None])
    q[~valid] = torch.tensor((1.0, 0.0, 0.0, 0.0), dtype=q.dtype, device=q.device)
    return q.float()
