"""``metrics.attribute_errors`` on a torch device: the same measures, computed where the decoded splats are.

The host reference stays on the host and is uploaded a block of rows at a time, so device memory grows by one
block, not by a second copy of the scene. Sums are float64 like the host's; percentiles use numpy's ``linear``
rule. Results match the host function to float64 rounding (a test compares them).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sogs_compressor.compute_policy import verify_block_rows
from sogs_compressor.sog.means import log_transform, log_transform_on_device
from sogs_compressor.splats import COEFFS_PER_DEGREE, SplatSet
from sogs_compressor.splats_torch import SplatTensors
from sogs_compressor.verify.metrics import PER_SPLAT, beyond_tolerance, worst_cases


def attribute_errors_torch(reference: SplatSet | SplatTensors, decoded: SplatTensors) -> dict:
    """``metrics.attribute_errors(reference, decoded)`` computed on ``decoded``'s device (same keys)."""
    if reference.count != decoded.count:
        raise ValueError(f"cannot compare {reference.count} splats with {decoded.count}")
    device = decoded.device
    n = reference.count
    ref_all = reference if isinstance(reference, SplatTensors) else None
    extent = _extent(reference, device)
    diagonal = float(torch.sqrt((extent[0] * extent[0] + extent[1] * extent[1]) + extent[2] * extent[2])) or 1.0
    rest = COEFFS_PER_DEGREE[min(reference.sh_degree, decoded.sh_degree)]
    pos_err = torch.empty(n, dtype=torch.float64, device=device)
    per_splat = {key: torch.empty(n, dtype=torch.float64, device=device) for key in PER_SPLAT}
    rot_deg = per_splat["rotation_deg"]
    cell = _position_cell(reference, device)
    has_cell = cell > 0
    safe_cell = torch.where(has_cell, cell, 1.0)
    zero = torch.zeros((), dtype=torch.float64, device=device)
    sums = {key: zero.clone() for key in ("f_dc", "opacity", "scale", "f_rest")}
    scale_count = torch.zeros((), dtype=torch.int64, device=device)
    step = verify_block_rows(device)
    for start in range(0, n, step):
        rows = slice(start, min(n, start + step))
        ref = ref_all.rows(rows) if ref_all is not None else SplatTensors.from_splats(reference, device, rows)
        dec = decoded.rows(rows)
        pos_err[rows] = _row_norm(dec.positions.double() - ref.positions.double()) / diagonal
        moved = (log_transform_on_device(dec.positions.double()) - log_transform_on_device(ref.positions.double())).abs()
        per_splat["position_cells"][rows] = torch.where(has_cell, moved / safe_cell, 0.0).max(dim=1).values

        cos_half = (_normalize(ref.rotations) * _normalize(dec.rotations)).sum(dim=1).abs().clamp(0.0, 1.0)
        rot_deg[rows] = torch.rad2deg(2.0 * torch.arccos(cos_half))

        finite = torch.isfinite(ref.log_scales) & torch.isfinite(dec.log_scales)
        scale_diff = torch.where(finite, dec.log_scales.double() - ref.log_scales.double(), 0.0)
        sums["scale"] += _squared(scale_diff)
        scale_count += finite.sum()
        per_splat["log_scale_growth"][rows] = scale_diff.max(dim=1).values
        per_splat["log_scale_shrink"][rows] = -scale_diff.min(dim=1).values
        dc_diff = dec.f_dc.double() - ref.f_dc.double()
        sums["f_dc"] += _squared(dc_diff)
        per_splat["f_dc_abs"][rows] = dc_diff.abs().max(dim=1).values
        alpha_diff = _sigmoid(dec.opacity_logits.double()) - _sigmoid(ref.opacity_logits.double())
        sums["opacity"] += alpha_diff.abs().sum()
        per_splat["opacity_growth"][rows] = alpha_diff
        rest_diff = _rest(dec, rest) - _rest(ref, rest)
        sums["f_rest"] += _squared(rest_diff)
        per_splat["f_rest_abs"][rows] = rest_diff.abs().max(dim=1).values if rest else 0.0
        del ref, dec
    scale_total = int(scale_count)
    pos_median, pos_p99, pos_max = percentiles(pos_err, (50, 99, 100))
    rot_median, rot_p99 = percentiles(rot_deg, (50, 99))
    return {
        "position_rel_median": pos_median,
        "position_rel_p99": pos_p99,
        "position_rel_max": pos_max,
        "f_dc_rmse": _root_mean(float(sums["f_dc"]), 3 * n),
        "opacity_mae": float(sums["opacity"]) / n if n else 0.0,
        "log_scale_rmse": _root_mean(float(sums["scale"]), scale_total),
        "rotation_deg_median": rot_median,
        "rotation_deg_p99": rot_p99,
        "f_rest_rmse": _root_mean(float(sums["f_rest"]), 3 * rest * n),
        "bbox_diagonal": diagonal,
        **worst_cases(lambda key, percents: percentiles(per_splat[key], percents), n),
        **beyond_tolerance(per_splat, lambda mask: int(mask.sum())),
    }


def percentiles(values: torch.Tensor, percents: tuple[float, ...]) -> list[float]:
    """``np.percentile(values, p)`` (``linear``) of a 1D tensor for each p; 0.0 for no values. One sort on a GPU
    (its k-th value search runs one block per slice); selection (``kthvalue``) on the CPU."""
    n = values.numel()
    if n == 0:
        return [0.0] * len(percents)
    ordered = values.sort().values if values.is_cuda else None

    def kth(k: int) -> torch.Tensor:  # the k-th smallest, 1-based
        return ordered[k - 1] if ordered is not None else values.kthvalue(k).values

    out = []
    for percent in percents:
        position = percent / 100.0 * (n - 1)
        low = math.floor(position)
        fraction = position - low
        a = kth(low + 1)
        if fraction == 0.0:
            out.append(float(a))
            continue
        b = kth(min(low + 2, n))
        difference = b - a
        # numpy's _lerp: from the nearer end, so the result stays within [a, b]
        out.append(float(b - difference * (1.0 - fraction)) if fraction >= 0.5 else float(a + difference * fraction))
    return out


def percentile(values: torch.Tensor, percent: float) -> float:
    """``np.percentile(values, percent)`` (``linear``) of a 1D tensor."""
    return percentiles(values, (percent,))[0]


def _extent(reference: SplatSet | SplatTensors, device: torch.device) -> torch.Tensor:
    """Per-axis max - min of the reference positions, float64 (the host's ``max - min``)."""
    if isinstance(reference, SplatTensors):
        positions = reference.positions
        return positions.max(dim=0).values.double() - positions.min(dim=0).values.double()
    positions = reference.positions
    high = torch.from_numpy(positions.max(axis=0)).double()
    low = torch.from_numpy(positions.min(axis=0)).double()
    return (high - low).to(device)


def _position_cell(reference: SplatSet | SplatTensors, device: torch.device) -> torch.Tensor:
    """``metrics.position_cell``: the 16-bit position grid's cell per axis in the format's log space, float64.
    The extremes are log-transformed on the host, as the encoder (and the host measure) does."""
    if not reference.count:
        return torch.zeros(3, dtype=torch.float64, device=device)
    if isinstance(reference, SplatTensors):
        low = reference.positions.min(dim=0).values.cpu().numpy()
        high = reference.positions.max(dim=0).values.cpu().numpy()
    else:
        low, high = reference.positions.min(axis=0), reference.positions.max(axis=0)
    span = log_transform(high.astype(np.float64)) - log_transform(low.astype(np.float64))
    return torch.from_numpy(span / 65535.0).to(device)


def _row_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of each row of an (N, 3) tensor, summed left to right like numpy."""
    squares = x * x
    return torch.sqrt((squares[:, 0] + squares[:, 1]) + squares[:, 2])


def _normalize(q: torch.Tensor) -> torch.Tensor:
    """``attributes.normalize_quaternions`` (float64): unit rows, all-zero rows become the identity."""
    q = q.double()
    squares = q * q
    norm = torch.sqrt(((squares[:, 0] + squares[:, 1]) + squares[:, 2]) + squares[:, 3])[:, None]
    out = q / torch.where(norm > 0, norm, 1.0)
    identity = torch.tensor((1.0, 0.0, 0.0, 0.0), dtype=out.dtype, device=out.device)
    return torch.where(norm == 0, identity, out)


def _sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``attributes.sigmoid``'s formula."""
    e = torch.exp(-x.abs())
    return torch.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _rest(splats: SplatTensors, coeffs: int) -> torch.Tensor:
    """The first ``coeffs`` SH coefficients per channel, float64, channel-major."""
    block = splats.f_rest.double()
    return block.reshape(block.shape[0], 3, splats.coeffs_per_channel)[:, :, :coeffs].reshape(block.shape[0], -1)


def _squared(diff: torch.Tensor) -> torch.Tensor:
    return (diff * diff).sum()


def _root_mean(total: float, count: int) -> float:
    return math.sqrt(total / count) if count else 0.0
