"""Positions (``means_l`` / ``means_u``): 16-bit, log-transformed, per-axis range (formats.md 2.4).

The host encoder, its device twin (with the position-bit rules of ``quantize/codebook_rd.py`` on the device) and
the decoders. Where splat-transform truncates we round, which halves the worst-case error and stays
byte-compatible with every reader (the format fixes the decode formula, not the encoder's rounding).
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from sogs_compressor.quantize import codebook_rd as rd
from sogs_compressor.splats import SplatSet

if TYPE_CHECKING:
    import torch

EPS = float(np.finfo(np.float64).eps)

THRESHOLD_GUARD = 1e-12
"""Distance from a faint-splat opacity threshold within which the host decides the position bits."""

SIZE_GUARD = 1e-9
"""Distance from an integer within which the host decides a splat's size-bound position bits: the device's
``log2`` is off by a few ulps of values below ~100."""


# --- host ---------------------------------------------------------------------------------------------------

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


def encode_positions(
    splats: SplatSet, position_bits: int, device: torch.device | None, min_bits: int = 0
) -> tuple[np.ndarray, np.ndarray, list[float], list[float]]:
    """means_l / means_u bytes and the log-domain mins / maxs, coarsened below 16 bits for faint splats
    (``codebook_rd.position_bits``) where their move stays small next to their size (``size_position_bits``),
    never below ``min_bits`` (the error bound's ``tolerances.MIN_POSITION_BITS``)."""
    if device is None:
        means, opacity_bits, size_bits, coarsen = encode_means, rd.position_bits, rd.size_position_bits, \
            rd.coarsen_grid
    else:
        means, opacity_bits, size_bits, coarsen = (
            partial(f, device=device) for f in (encode_means_on_device, position_bits_on_device,
                                                size_position_bits_on_device, coarsen_grid_on_device))
    low, high, mins, maxs = means(splats.positions)
    if position_bits < 16:
        by_opacity = splats.opacity_logits if rd.POSITION_SHIFT_BY_OPACITY else None
        kept = np.maximum.reduce([
            opacity_bits(splats.opacity_logits, position_bits),
            size_bits(splats.positions, splats.log_scales, mins, maxs, shift=rd.POSITION_SHIFT, opacity_logits=by_opacity),
            np.full(splats.count, min_bits, np.int64)])
        low, high = coarsen(low, high, kept)
    return low, high, mins, maxs


# --- device (encode_means, codebook_rd.position_bits / size_position_bits / coarsen_grid) ---------------------

def log_transform_on_device(p: torch.Tensor) -> torch.Tensor:
    """``log_transform`` (to within the device's log1p)."""
    import torch

    return torch.sign(p) * torch.log1p(p.abs())


def encode_means_on_device(
    positions: np.ndarray, device: torch.device
) -> tuple[np.ndarray, np.ndarray, list[float], list[float]]:
    """``encode_means`` on ``device``: same low/high bytes and the same mins/maxs floats."""
    import torch

    from sogs_compressor.sog.device_arrays import near_half, to_device

    if positions.shape[0] == 0:
        return encode_means(positions)
    p = to_device(positions, device)
    if not bool(torch.isfinite(p).all()):
        return encode_means(positions)  # unsanitized input: the reference's own behaviour
    lo_pos = p.min(dim=0).values.cpu().numpy()
    hi_pos = p.max(dim=0).values.cpu().numpy()
    # sign(v) * log1p(|v|) is increasing, so the log-domain extremes are those of the positions themselves.
    mins = log_transform(lo_pos)
    maxs = log_transform(hi_pos)
    span = maxs - mins
    safe = np.where(span > 0, span, 1.0)
    mins_t, safe_t = to_device(mins, device), to_device(safe, device)
    varies = to_device(span > 0, device, torch.bool)

    lt = log_transform_on_device(p)
    r = (lt - mins_t) / safe_t * 65535.0
    q = torch.where(varies, torch.round(r), 0.0).clamp(0, 65535).to(torch.int32)

    # A few ulps of log1p error, scaled by 65535 / span, plus the rounding of the three operations.
    extent = np.maximum(np.abs(mins), np.abs(maxs))
    bound = to_device(16.0 * EPS * (extent * 65535.0 / safe + 65535.0), device)
    rows = torch.nonzero((near_half(r, bound) & varies).any(dim=1)).reshape(-1).cpu().numpy()
    # The reference on the doubtful rows plus two rows holding the per-axis extremes (which fix its mins/maxs).
    extremes = np.stack([lo_pos, hi_pos]).astype(positions.dtype)
    subset = np.concatenate([positions[rows], extremes])
    low_h, high_h, mins_list, maxs_list = encode_means(subset)
    if rows.size:
        exact = low_h[:-2].astype(np.int32) + 256 * high_h[:-2].astype(np.int32)
        q[to_device(rows, device, torch.int64)] = to_device(exact, device, torch.int32)
    low = (q & 0xFF).to(torch.uint8).cpu().numpy()
    high = (q >> 8).to(torch.uint8).cpu().numpy()
    return low, high, mins_list, maxs_list


def logistic_on_device(x: torch.Tensor) -> torch.Tensor:
    """``codebook_rd.position_bits``'s opacity formula (to within the device's exp)."""
    import torch

    return 1.0 / (1.0 + torch.exp(-x))


def position_bits_on_device(opacity_logits: np.ndarray, bits: int, device: torch.device) -> np.ndarray:
    """``codebook_rd.position_bits`` on ``device`` (int64 bits kept per splat)."""
    import torch

    from sogs_compressor.sog.device_arrays import to_device

    if not 8 <= bits <= 16 or bits == 16:
        return rd.position_bits(opacity_logits, bits)  # the reference validates and needs no maths for 16
    x = to_device(opacity_logits, device)
    alpha = logistic_on_device(x)
    kept = torch.full(x.shape, bits, dtype=torch.int64, device=device)
    doubtful = torch.zeros(x.shape, dtype=torch.bool, device=device)
    for threshold in rd.TRANSLUCENT_ALPHA:
        kept -= (alpha < threshold).to(torch.int64)
        doubtful |= (alpha - threshold).abs() <= THRESHOLD_GUARD
    index = torch.nonzero(doubtful).reshape(-1)
    if index.numel():
        host_index = index.cpu().numpy()
        kept[index] = to_device(rd.position_bits(opacity_logits[host_index], bits), device, torch.int64)
    return kept.cpu().numpy()


def log2_on_device(x: torch.Tensor) -> torch.Tensor:
    """``size_position_bits``'s ``log2`` (a name of its own: the guard's test makes it an ulp off)."""
    import torch

    return torch.log2(x)


def size_position_bits_on_device(positions: np.ndarray, log_scales: np.ndarray, mins, maxs, device: torch.device,
                                 shift: float = rd.POSITION_SHIFT,
                                 opacity_logits: np.ndarray | None = None) -> np.ndarray:
    """``codebook_rd.size_position_bits`` on ``device``: the same float64 steps, in the same order; allowances
    within ``SIZE_GUARD`` of an integer are recomputed on the host."""
    import torch

    from sogs_compressor.sog.device_arrays import to_device

    if len(positions) == 0:
        return rd.size_position_bits(positions, log_scales, mins, maxs, shift, opacity_logits)
    cell = to_device((np.asarray(maxs, np.float64) - np.asarray(mins, np.float64)) / 65535.0, device)
    world = ((to_device(positions, device).abs() + 1.0) * cell).amax(dim=1)
    middle = torch.sort(to_device(log_scales, device), dim=1).values[:, 1]
    allowance = ((math.log2(shift) + middle / math.log(2.0)) - log2_on_device(world)) + 1.0
    if opacity_logits is not None:
        allowance = allowance - log2_on_device(logistic_on_device(to_device(opacity_logits, device)))
    doubtful = (allowance - torch.round(allowance)).abs() <= SIZE_GUARD
    kept = 16 - torch.clamp(torch.floor(allowance), 0, 16).to(torch.int64)
    index = torch.nonzero(doubtful).reshape(-1)
    if index.numel():
        rows = index.cpu().numpy()
        logits = None if opacity_logits is None else opacity_logits[rows]
        kept[index] = to_device(rd.size_position_bits(positions[rows], log_scales[rows], mins, maxs, shift, logits),
                                device, torch.int64)
    return kept.cpu().numpy()


def coarsen_grid_on_device(
    low: np.ndarray, high: np.ndarray, kept_bits: np.ndarray, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """``codebook_rd.coarsen_grid`` on ``device``: integers and one exact float64 division, so no guard needed."""
    import torch

    from sogs_compressor.sog.device_arrays import to_device

    q = to_device(high, device, torch.int64) * 256 + to_device(low, device, torch.int64)
    shift = 16 - to_device(kept_bits, device, torch.int64)[:, None]
    step = torch.bitwise_left_shift(torch.ones_like(shift), shift)
    q = torch.clamp(torch.round(q.double() / step.double()).to(torch.int64) * step, max=65535)
    return (q & 0xFF).to(torch.uint8).cpu().numpy(), (q >> 8).to(torch.uint8).cpu().numpy()


def decode_means_on_device(low: torch.Tensor, high: torch.Tensor, mins, maxs) -> torch.Tensor:
    """``decode_means`` on (N, 3) uint8 tensors: float32 positions (to within the device's expm1); the verifier
    decodes what was written on the device."""
    import torch

    q = high.double() * 256.0 + low.double()
    mins = torch.tensor(mins, dtype=torch.float64, device=low.device)
    maxs = torch.tensor(maxs, dtype=torch.float64, device=low.device)
    lt = mins + (maxs - mins) * (q / 65535.0)
    return (torch.sign(lt) * torch.expm1(lt.abs())).float()
