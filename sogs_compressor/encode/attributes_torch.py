"""The per-splat part of the SOG encoder on a torch device, matching the numpy code it mirrors.

``encode/attributes.py`` and ``quantize/codebook*.py`` stay the reference; every function here takes and returns
the same host (numpy) arrays as its namesake there, plus the ``device`` to compute on, and must give the same
bytes. Most of the arithmetic is IEEE-exact in both (float64 ``+ - * /``, ``sqrt``, comparisons, min/argmax,
round-half-to-even), evaluated in the same order. ``log1p`` and ``exp`` are not: numpy's libm and torch's
kernels (Sleef on CPU, libdevice on CUDA) may differ in the last bit. Where such a value then gets rounded to
an integer or compared with a threshold, every result that an error of a few ulps could flip is recomputed on
the host by the numpy function itself ("guard band": on real scenes about none in a billion values).

On the CPU the bytes are identical (tested). On an H100 the only measured difference is in ``quats``: 1 texel in
a million (14 in 4M) off by one byte, where a rotation component sits on a rounding boundary and CUDA's float64
arithmetic differs in the last bit (bench/check_gpu_encode.py, bench/RESULTS.md) — within float tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sogs_compressor.encode import attributes as attr
from sogs_compressor.quantize import codebook_rd as rd
from sogs_compressor.quantize.codebook import search_grid
from sogs_compressor.quantize.value_ops import dp_group_counts

EPS = float(np.finfo(np.float64).eps)

OPACITY_GUARD = 1e-10
"""Distance from a rounding half-point (in alpha * 255 units) within which the host decides the alpha byte;
the device's sigmoid * 255 is off by at most ~255 * 8 eps = 5e-13."""

THRESHOLD_GUARD = 1e-12
"""Distance from a faint-splat opacity threshold within which the host decides the position bits."""

_OTHER_SLOTS = ((1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2))
"""Quaternion slots stored in RGB, ascending, for each largest-component index."""


def _to_device(values: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values)).to(device=device, dtype=dtype)


def _near_half(r: torch.Tensor, bound: torch.Tensor | float) -> torch.Tensor:
    """Where ``round(r)`` could change under an error of ``bound``: r within ``bound`` of a half-integer."""
    return (r - torch.floor(r) - 0.5).abs() <= bound


# --- positions (attributes.encode_means, codebook_rd.position_bits / coarsen_grid) ---------------------------

def log_transform(p: torch.Tensor) -> torch.Tensor:
    """``attributes.log_transform`` (to within the device's log1p)."""
    return torch.sign(p) * torch.log1p(p.abs())


def encode_means(
    positions: np.ndarray, device: torch.device
) -> tuple[np.ndarray, np.ndarray, list[float], list[float]]:
    """``attributes.encode_means`` on ``device``: same low/high bytes and the same mins/maxs floats."""
    if positions.shape[0] == 0:
        return attr.encode_means(positions)
    p = _to_device(positions, device)
    if not bool(torch.isfinite(p).all()):
        return attr.encode_means(positions)  # unsanitized input: the reference's own behaviour
    lo_pos = p.min(dim=0).values.cpu().numpy()
    hi_pos = p.max(dim=0).values.cpu().numpy()
    # sign(v) * log1p(|v|) is increasing, so the log-domain extremes are those of the positions themselves.
    mins = attr.log_transform(lo_pos)
    maxs = attr.log_transform(hi_pos)
    span = maxs - mins
    safe = np.where(span > 0, span, 1.0)
    mins_t, safe_t = _to_device(mins, device), _to_device(safe, device)
    varies = _to_device(span > 0, device, torch.bool)

    lt = log_transform(p)
    r = (lt - mins_t) / safe_t * 65535.0
    q = torch.where(varies, torch.round(r), 0.0).clamp(0, 65535).to(torch.int32)

    # A few ulps of log1p error, scaled by 65535 / span, plus the rounding of the three operations.
    extent = np.maximum(np.abs(mins), np.abs(maxs))
    bound = _to_device(16.0 * EPS * (extent * 65535.0 / safe + 65535.0), device)
    rows = torch.nonzero((_near_half(r, bound) & varies).any(dim=1)).reshape(-1).cpu().numpy()
    # The reference on the doubtful rows plus two rows holding the per-axis extremes (which fix its mins/maxs).
    extremes = np.stack([lo_pos, hi_pos]).astype(positions.dtype)
    subset = np.concatenate([positions[rows], extremes])
    low_h, high_h, mins_list, maxs_list = attr.encode_means(subset)
    if rows.size:
        exact = low_h[:-2].astype(np.int32) + 256 * high_h[:-2].astype(np.int32)
        q[_to_device(rows, device, torch.int64)] = _to_device(exact, device, torch.int32)
    low = (q & 0xFF).to(torch.uint8).cpu().numpy()
    high = (q >> 8).to(torch.uint8).cpu().numpy()
    return low, high, mins_list, maxs_list


def logistic(x: torch.Tensor) -> torch.Tensor:
    """``codebook_rd.position_bits``'s opacity formula (to within the device's exp)."""
    return 1.0 / (1.0 + torch.exp(-x))


def position_bits(opacity_logits: np.ndarray, bits: int, device: torch.device) -> np.ndarray:
    """``codebook_rd.position_bits`` on ``device`` (int64 bits kept per splat)."""
    if not 8 <= bits <= 16 or bits == 16:
        return rd.position_bits(opacity_logits, bits)  # the reference validates and needs no maths for 16
    x = _to_device(opacity_logits, device)
    alpha = logistic(x)
    kept = torch.full(x.shape, bits, dtype=torch.int64, device=device)
    doubtful = torch.zeros(x.shape, dtype=torch.bool, device=device)
    for threshold in rd.TRANSLUCENT_ALPHA:
        kept -= (alpha < threshold).to(torch.int64)
        doubtful |= (alpha - threshold).abs() <= THRESHOLD_GUARD
    index = torch.nonzero(doubtful).reshape(-1)
    if index.numel():
        host_index = index.cpu().numpy()
        kept[index] = _to_device(rd.position_bits(opacity_logits[host_index], bits), device, torch.int64)
    return kept.cpu().numpy()


def log2(x: torch.Tensor) -> torch.Tensor:
    """``size_position_bits``'s ``log2`` (a name of its own: the guard's test makes it an ulp off)."""
    return torch.log2(x)


SIZE_GUARD = 1e-9
"""Distance from an integer within which the host decides a splat's size-bound position bits: the device's
``log2`` is off by a few ulps of values below ~100."""


def size_position_bits(positions: np.ndarray, log_scales: np.ndarray, mins, maxs, device: torch.device,
                       shift: float = rd.POSITION_SHIFT, opacity_logits: np.ndarray | None = None) -> np.ndarray:
    """``codebook_rd.size_position_bits`` on ``device``: the same float64 steps, in the same order; allowances
    within ``SIZE_GUARD`` of an integer are recomputed on the host."""
    if len(positions) == 0:
        return rd.size_position_bits(positions, log_scales, mins, maxs, shift, opacity_logits)
    cell = _to_device((np.asarray(maxs, np.float64) - np.asarray(mins, np.float64)) / 65535.0, device)
    world = ((_to_device(positions, device).abs() + 1.0) * cell).amax(dim=1)
    middle = torch.sort(_to_device(log_scales, device), dim=1).values[:, 1]
    allowance = ((math.log2(shift) + middle / math.log(2.0)) - log2(world)) + 1.0
    if opacity_logits is not None:
        allowance = allowance - log2(logistic(_to_device(opacity_logits, device)))
    doubtful = (allowance - torch.round(allowance)).abs() <= SIZE_GUARD
    kept = 16 - torch.clamp(torch.floor(allowance), 0, 16).to(torch.int64)
    index = torch.nonzero(doubtful).reshape(-1)
    if index.numel():
        rows = index.cpu().numpy()
        logits = None if opacity_logits is None else opacity_logits[rows]
        kept[index] = _to_device(rd.size_position_bits(positions[rows], log_scales[rows], mins, maxs, shift, logits),
                                 device, torch.int64)
    return kept.cpu().numpy()


def coarsen_grid(
    low: np.ndarray, high: np.ndarray, kept_bits: np.ndarray, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """``codebook_rd.coarsen_grid`` on ``device``: integers and one exact float64 division, so no guard needed."""
    q = _to_device(high, device, torch.int64) * 256 + _to_device(low, device, torch.int64)
    shift = 16 - _to_device(kept_bits, device, torch.int64)[:, None]
    step = torch.bitwise_left_shift(torch.ones_like(shift), shift)
    q = torch.clamp(torch.round(q.double() / step.double()).to(torch.int64) * step, max=65535)
    return (q & 0xFF).to(torch.uint8).cpu().numpy(), (q >> 8).to(torch.uint8).cpu().numpy()


# --- rotations (attributes.encode_quats) ----------------------------------------------------------------------

def encode_quats(rotations: np.ndarray, device: torch.device) -> np.ndarray:
    """``attributes.encode_quats`` on ``device``; all IEEE-exact operations in the reference's order."""
    q = _to_device(rotations, device)
    if q.shape[0] == 0 or not bool(torch.isfinite(q).all()):
        return attr.encode_quats(rotations)
    # np.linalg.norm(axis=1) is sqrt of the left-to-right sum of squares for 4 components.
    squares = q * q
    norm = torch.sqrt(((squares[:, 0] + squares[:, 1]) + squares[:, 2]) + squares[:, 3])[:, None]
    zero = norm[:, 0] == 0
    q = q / torch.where(norm > 0, norm, 1.0)
    q[zero] = torch.tensor((1.0, 0.0, 0.0, 0.0), dtype=q.dtype, device=device)
    largest = torch.argmax(q.abs(), dim=1)  # first of equal components, like numpy
    sign = torch.where(q.gather(1, largest[:, None])[:, 0] < 0, -1.0, 1.0)
    q = q * (sign * float(attr.SQRT2))[:, None]
    others = q.gather(1, torch.tensor(_OTHER_SLOTS, device=device)[largest])
    rgb = torch.clamp(torch.round(255.0 * (others * 0.5 + 0.5)), 0, 255).to(torch.uint8)
    return torch.cat([rgb, (252 + largest).to(torch.uint8)[:, None]], dim=1).cpu().numpy()


# --- opacity (attributes.encode_opacity) ----------------------------------------------------------------------

def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``attributes.sigmoid``'s formula (to within the device's exp)."""
    e = torch.exp(-x.abs())
    return torch.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def encode_opacity(logits: np.ndarray, device: torch.device) -> np.ndarray:
    """``attributes.encode_opacity`` on ``device``; alphas near a rounding half-point are decided on the host."""
    alpha = torch.nan_to_num(sigmoid(_to_device(logits, device)) * 255.0, nan=0.0)
    out = torch.clamp(torch.round(alpha), 0, 255).to(torch.uint8)
    index = torch.nonzero(_near_half(alpha, OPACITY_GUARD)).reshape(-1)
    if index.numel():
        out[index] = _to_device(attr.encode_opacity(logits[index.cpu().numpy()]), device, torch.uint8)
    return out.cpu().numpy()


# --- codebook labels (codebook.nearest_codebook_index) --------------------------------------------------------

def nearest_codebook_index(values: np.ndarray, codebook: np.ndarray, device: torch.device) -> np.ndarray:
    """``codebook.nearest_codebook_index`` on ``device``: uint8 index of the nearest entry, same ties.

    The mid-points are built on the host exactly as the reference builds them (including its float32 search
    grid for float32 values), so ``torch.searchsorted(right=True)`` makes the same comparisons as numpy's
    ``side="right"``; NaN, which numpy sorts last, is mapped to the last entry explicitly.
    """
    flat = np.asarray(values).reshape(-1)
    grid = search_grid(codebook, flat.dtype)
    dtype = torch.float32 if grid.dtype == np.float32 else torch.float64
    v = _to_device(flat, device, dtype)
    index = torch.searchsorted(_to_device(grid, device, dtype), v, right=True)
    last = grid.size  # the codebook's last index
    index = torch.where(torch.isnan(v), last, torch.clamp(index, max=last))
    return index.to(torch.uint8).cpu().numpy().reshape(np.shape(values))


# --- decoders (attributes.decode_*): the verifier decodes what was written on the device -----------------------

def decode_means(low: torch.Tensor, high: torch.Tensor, mins, maxs) -> torch.Tensor:
    """``attributes.decode_means`` on (N, 3) uint8 tensors: float32 positions (to within the device's expm1)."""
    q = high.double() * 256.0 + low.double()
    mins = torch.tensor(mins, dtype=torch.float64, device=low.device)
    maxs = torch.tensor(maxs, dtype=torch.float64, device=low.device)
    lt = mins + (maxs - mins) * (q / 65535.0)
    return (torch.sign(lt) * torch.expm1(lt.abs())).float()


def decode_quats(rgba: torch.Tensor) -> torch.Tensor:
    """``attributes.decode_quats`` on an (N, 4) uint8 tensor: unit quaternions (w, x, y, z), float32."""
    abc = (rgba[:, :3].double() / 255.0 - 0.5) * float(attr.SQRT2)
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


def decode_opacity_logit(alpha: torch.Tensor) -> torch.Tensor:
    """``attributes.decode_opacity_logit`` on a uint8 tensor (to within the device's log)."""
    p = torch.clamp(alpha.double() / 255.0, 1e-6, 1.0 - 1e-6)
    return torch.log(p / (1.0 - p)).float()


def decode_labels(rgba: torch.Tensor) -> torch.Tensor:
    """``attributes.decode_labels``: palette labels (N,) int64 from R + 256 G."""
    return rgba[:, 0].long() + 256 * rgba[:, 1].long()


# --- codebook builds' passes over all values (quantize/value_ops.py) ------------------------------------------

class DeviceOps:
    """``value_ops.HostOps`` on a torch device: the same arrays (a stable sort is unique; the search and the error
    bound's check are exact comparisons of the same float32/float64 values)."""

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.kernel_usable = True

    def stable_argsort(self, flat: np.ndarray) -> np.ndarray:
        # + 0.0 turns -0.0 into +0.0: numpy's comparison sort holds them equal (input order kept), while a radix
        # sort of the bit patterns would put -0.0 first.
        keys = torch.from_numpy(np.ascontiguousarray(flat)).to(self.device) + 0.0
        return torch.sort(keys, stable=True).indices.cpu().numpy()

    def nearest(self, values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
        return nearest_codebook_index(values, codebook, self.device)

    def group_counts(self, costs: np.ndarray, penalties: np.ndarray) -> np.ndarray:
        from sogs_compressor.quantize import dp_triton  # imports Triton: only on the device path
        from sogs_compressor.triton_support import kernels_runnable

        if self.kernel_usable and costs.shape[0] <= dp_triton.MAX_BOUNDS and kernels_runnable(self.device):
            try:
                if dp_triton.kernel_ready(self.device):
                    return dp_triton.group_counts(costs, penalties, self.device)
            except Exception:  # noqa: BLE001 - e.g. a compiler that rejects the kernel: the host gives the same
                self.kernel_usable = False
        return dp_group_counts(costs, penalties)

    def violations(self, values: np.ndarray, codebook: np.ndarray, labels: np.ndarray, below: float,
                   above: float) -> np.ndarray:
        flat = np.asarray(values).reshape(-1)
        v = torch.from_numpy(np.ascontiguousarray(flat)).to(self.device).double()  # exact, as astype(float64)
        entries = _to_device(np.asarray(codebook, np.float64), self.device)
        index = _to_device(np.asarray(labels, np.uint8).reshape(-1), self.device, torch.uint8).long()
        error = entries[index] - v
        outside = ((error > above) | (error < -below)) & torch.isfinite(v)
        return torch.nonzero(outside).reshape(-1).cpu().numpy()
