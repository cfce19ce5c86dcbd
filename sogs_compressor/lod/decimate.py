"""Decimation: fewer splats by merging neighbouring pairs, cheapest merges first, in rounds until the target.

Each round puts the splats in Morton order (``order/morton.py``), prices the merge of every splat with each of its
next ``WINDOW`` neighbours on the curve, picks disjoint pairs cheapest first (``lod/matching.py``), keeps the
cheapest ones the round may merge, and replaces each pair by its moment-matched Gaussian (``lod/moments.py``).
A round merges at most ``ROUND_FRACTION`` of the splats, so a deep cut takes several rounds and a splat merged
early can be merged again with a neighbour later.

Merge price (a closed form, no sampling): the shape term is how much the merged Gaussian's entropy exceeds the
pair's, ``0.5 (log det Sigma - p log det Sigma_i - q log det Sigma_j)`` (>= 0; an upper bound of the KL divergence
from the pair's mixture to the merged Gaussian, which splat-transform estimates by sampling), plus the squared
colour/SH difference. Measured on the real guitar at 50% (bench/RESULTS.md, "Decimation"): scaling the price by the
pair's ink (opacity x area) cost 1.7 dB of rendered content PSNR, so it is scale-free as splat-transform's; colour
weight 0.1 beat 0.03, 0.3 and 1 by 0.1-0.4 dB; a 16-splat window gained nothing over 8; rounds of at most 25%
cost 0.2 dB against rounds of at most half.

Device work is chunked. Per round the device holds, by count of its arrays, ``WINDOW x 8`` bytes of merge keys and
~42 bytes of matching state per splat (the Morton sort before them, ~130 bytes per splat, is freed first), plus
~0.3 GB of chunk temporaries whatever the size: ~1.5 GB at 10M splats. The splats stay on the host: the input,
the current set and the next (3 x 236 bytes per splat at SH degree 3: ~7 GB at 10M).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from sogs_compressor.lod.matching import NO_EDGE, edge_keys, match_pairs
from sogs_compressor.lod.moments import LOG_SCALE_LIMIT, determinants, log_ink, merge_pairs, merged_covariance
from sogs_compressor.lod.moments import covariances as splat_covariances
from sogs_compressor.order.morton import morton_order
from sogs_compressor.splats import COLUMNS, SplatSet

WINDOW = 8
"""Merge partners considered per splat: its next WINDOW neighbours along the Morton curve (and, by symmetry, its
previous WINDOW)."""

ROUND_FRACTION = 0.5
"""At most this fraction of a round's splats is merged away in that round."""

MATCH_ITERATIONS = 16
"""Pointing rounds of the pair matching per decimation round (the rest waits for the next round)."""

CHUNK_ROWS = 1 << 18
"""Rows per device chunk when pricing and merging (bounds the temporaries, ~0.3 GB in float64)."""

COLOR_WEIGHT = 0.1
"""Weight of the squared colour/SH-coefficient difference against the shape term (nats) in a merge's price."""

VARIANCE_FLOOR_RELATIVE = 1e-3
"""Axes thinner than this fraction of the scene's median largest axis count as that thin (flat 2DGS splats,
zero scales): the price and the merged scale stay finite."""

RoundCallback = Callable[[int, int, int], None]
"""Called after each round with (round number, splats before, splats after)."""


def decimate(
    splats: SplatSet,
    target: int,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    on_round: RoundCallback | None = None,
) -> SplatSet:
    """``splats`` reduced to exactly ``target`` splats by merging neighbouring pairs (a new set; the input is kept).

    Seeded (ties between equal merge prices) and deterministic: the same input, seed and device give the same
    arrays. Positions must be finite (``read.sanitize`` drops rows that are not). Output order: Morton order of the
    last round, merged splats where their pair's first splat was.
    """
    if not 1 <= target <= splats.count:
        raise ValueError(f"target must be 1..{splats.count} splats, not {target}")
    device = torch.device(device)
    variance_floor = _variance_floor(splats.log_scales)
    current = splats.take(np.arange(splats.count))
    rounds = 0
    while current.count > target:
        before = current.count
        current.reorder_in_place(morton_order(current.positions, device))
        allowed = min(before - target, max(1, int(before * ROUND_FRACTION)))
        keys = _edge_keys(current, device, variance_floor, seed + rounds)
        first, second, pair_key = match_pairs(keys, MATCH_ITERATIONS, CHUNK_ROWS)
        del keys
        if first.numel() > allowed:
            cheapest = torch.sort(torch.argsort(pair_key, stable=True)[:allowed]).values
            first, second = first[cheapest], second[cheapest]
        current = _merge(current, first.cpu().numpy(), second.cpu().numpy(), device, variance_floor)
        rounds += 1
        if on_round is not None:
            on_round(rounds, before, current.count)
    return current


def _variance_floor(log_scales: np.ndarray) -> float:
    """Smallest variance an axis counts as: (VARIANCE_FLOOR_RELATIVE x median largest axis)^2."""
    largest = np.max(log_scales, axis=1) if log_scales.size else np.zeros(0, np.float32)
    largest = largest[np.isfinite(largest)]
    median = float(np.exp(np.median(largest))) if largest.size else 1.0
    return max((VARIANCE_FLOOR_RELATIVE * median) ** 2, 1e-300)


def _upload(splats: SplatSet, rows: np.ndarray | slice, device: torch.device) -> dict[str, torch.Tensor]:
    """Columns of ``rows`` as float64 tensors on ``device``."""
    return {name: torch.from_numpy(np.asarray(getattr(splats, name)[rows])).to(device, torch.float64)
            for name in COLUMNS}


def _edge_keys(splats: SplatSet, device: torch.device, variance_floor: float, seed: int) -> torch.Tensor:
    """(N, WINDOW) int64 merge keys of the edges (i, i+d+1) over the current (Morton) order."""
    n = splats.count
    keys = torch.empty((n, WINDOW), dtype=torch.int64, device=device)
    for start in range(0, n, CHUNK_ROWS):
        stop = min(n, start + CHUNK_ROWS)
        block = _upload(splats, slice(start, min(n, stop + WINDOW)), device)
        costs = _edge_costs(block, stop - start, variance_floor)
        chunk = edge_keys(costs, start, seed)
        past_end = (torch.arange(start, stop, device=device).unsqueeze(1)
                    + torch.arange(1, WINDOW + 1, device=device)) >= n
        keys[start:stop] = torch.where(past_end, NO_EDGE, chunk)
    return keys


def _edge_costs(block: dict[str, torch.Tensor], rows: int, variance_floor: float) -> torch.Tensor:
    """(rows, WINDOW) merge prices of row r with row r+d+1 of ``block`` (+inf past its end)."""
    mean = block["positions"]
    cov = splat_covariances(block["log_scales"], block["rotations"], variance_floor)
    log_det = (2 * block["log_scales"].clamp(-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT)).clamp_min(math.log(variance_floor)).sum(1)
    log_w = log_ink(block["log_scales"], block["opacity_logits"])
    color = torch.cat([block["f_dc"], block["f_rest"]], dim=1)
    total = mean.shape[0]
    costs = torch.full((rows, WINDOW), math.inf, dtype=torch.float64, device=mean.device)
    for step in range(1, WINDOW + 1):
        count = min(rows, total - step)
        if count <= 0:
            break
        i, j = slice(0, count), slice(step, step + count)
        p = torch.sigmoid(log_w[i] - log_w[j])
        merged = merged_covariance(p, cov[i], cov[j], mean[j] - mean[i])
        log_det_merged = torch.log(determinants(merged).clamp_min(variance_floor ** 3))
        shape = (0.5 * (log_det_merged - p * log_det[i] - (1 - p) * log_det[j])).clamp_min(0.0)
        colour = ((color[i] - color[j]) ** 2).sum(dim=1)
        costs[i, step - 1] = shape + COLOR_WEIGHT * colour
    return costs


def _merge(splats: SplatSet, first: np.ndarray, second: np.ndarray, device: torch.device,
           variance_floor: float) -> SplatSet:
    """``splats`` with each pair (first[k], second[k]) replaced by its merge, at first[k]'s place."""
    keep = np.ones(splats.count, dtype=bool)
    keep[second] = False
    kept = np.flatnonzero(keep)
    out = splats.take(kept)
    slots = np.searchsorted(kept, first)  # where each pair's first row landed
    for start in range(0, first.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        merged = merge_pairs(_upload(splats, first[rows], device), _upload(splats, second[rows], device),
                             variance_floor)
        for name in COLUMNS:
            getattr(out, name)[slots[rows]] = merged[name].to(torch.float32).cpu().numpy()
    return out
