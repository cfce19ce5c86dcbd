"""Colour and opacity (``sh0``): the DC colour as labels into one 256-entry codebook in RGB, the opacity as
round(sigmoid * 255) in alpha (formats.md 2.7).

The host encoders, the opacity's device twin, and the decoders (host, and device for the verifier).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from sogs_compressor import tolerances
from sogs_compressor.quantize.value_ops import HOST, ValueOps
from sogs_compressor.sog.codebook import codebook_for, decode_codebook

if TYPE_CHECKING:
    import torch

COLOUR_WINDOW = (tolerances.F_DC, tolerances.F_DC)
"""(below, above) of every f_dc value under the error bound."""

OPACITY_GUARD = 1e-10
"""Distance from a rounding half-point (in alpha * 255 units) within which the host decides the alpha byte;
the device's sigmoid * 255 is off by at most ~255 * 8 eps = 5e-13."""


def encode_colours(f_dc: np.ndarray, rate_weight: float, seed: int, *, ops: ValueOps = HOST,
                   weights: Callable[[np.ndarray], np.ndarray] | None = None,
                   error_bound: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(codebook (256,), labels (N, 3) uint8) of the DC colour (``codebook.codebook_for``)."""
    return codebook_for(f_dc, rate_weight, seed, ops=ops, weights=weights,
                        window=COLOUR_WINDOW if error_bound else None)


def decode_colours(rgba: np.ndarray, codebook) -> np.ndarray:
    """(N, 4) RGBA rows of ``sh0`` -> (N, 3) float32 f_dc."""
    return decode_codebook(rgba[:, :3], codebook)


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


def sigmoid_on_device(x: torch.Tensor) -> torch.Tensor:
    """``sigmoid``'s formula (to within the device's exp)."""
    import torch

    e = torch.exp(-x.abs())
    return torch.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def encode_opacity_on_device(logits: np.ndarray, device: torch.device) -> np.ndarray:
    """``encode_opacity`` on ``device``; alphas near a rounding half-point are decided on the host."""
    import torch

    from sogs_compressor.sog.device_arrays import near_half, to_device

    alpha = torch.nan_to_num(sigmoid_on_device(to_device(logits, device)) * 255.0, nan=0.0)
    out = torch.clamp(torch.round(alpha), 0, 255).to(torch.uint8)
    index = torch.nonzero(near_half(alpha, OPACITY_GUARD)).reshape(-1)
    if index.numel():
        out[index] = to_device(encode_opacity(logits[index.cpu().numpy()]), device, torch.uint8)
    return out.cpu().numpy()


def decode_opacity_logit_on_device(alpha: torch.Tensor) -> torch.Tensor:
    """``decode_opacity_logit`` on a uint8 tensor (to within the device's log)."""
    import torch

    p = torch.clamp(alpha.double() / 255.0, 1e-6, 1.0 - 1e-6)
    return torch.log(p / (1.0 - p)).float()
