"""Decimation: fewer splats by merging neighbouring pairs, cheapest merges first, in rounds until the target.

Each round puts the splats in Morton order (``order/morton.py``; the order of the output and of the chunks),
finds each splat's ``NEIGHBOURS`` nearest others (``lod/neighbours.py``, shifted Morton curves), prices the merge
of every splat with each of them, picks disjoint pairs cheapest first (``lod/matching.py``), keeps the cheapest
ones the round may merge, and replaces each pair by its moment-matched Gaussian (``lod/moments.py``). A round
merges at most ``ROUND_FRACTION`` of the splats, so a deep cut takes several rounds and a splat merged early can
be merged again with a neighbour later.

Merge price (a closed form, no sampling): the shape term is how much the merged Gaussian's entropy exceeds the
pair's, ``0.5 (log det Sigma - p log det Sigma_i - q log det Sigma_j)`` (>= 0; an upper bound of the KL divergence
from the pair's mixture to the merged Gaussian, which splat-transform estimates by sampling), plus the squared
colour/SH difference x ``COLOR_WEIGHT``. Measured on the real guitar (bench/RESULTS.md, "Decimation"): the partners
matter most: the 8 nearest neighbours instead of 8 Morton-curve neighbours each way gained 1.2-1.6 dB of rendered
content PSNR at 50/25/12.5% (the exact 8 nearest, by a k-d tree: 1.2-2.2 dB); the price is scale-free as
splat-transform's (scaling it by the pair's ink cost 1.7 dB).

Device memory per round (SH degree 3, by count of the arrays; nothing is sized by a constant but the chunks): the
round's splats as float32 (236 bytes per splat), 24 + 32 bytes per splat of positions and curve orders while the
neighbours are found, 8 x ``NEIGHBOURS`` bytes each of neighbours and merge keys, 88 bytes of shapes while the
prices are made, ~41 bytes of matching state, and chunk temporaries of ``CHUNK_ROWS`` rows (~0.3 GB at most).
Measured as live tensor bytes on the CPU (``bench/bench_decimate_memory.py``, guitar tiled at SH 3, cut to 50%):
0.34 GiB at 200K splats, 0.50 GiB at 500K, i.e. ~233 MiB + 580 bytes per splat: ~5.6 GiB at 10M. The Morton
sort before them (~130 bytes per splat) is freed first. The splats also stay on the host: the input, the current
set and the next (3 x 236 bytes per splat at SH degree 3: ~7 GB at 10M).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from sogs_compressor.lod.matching import edge_keys, match_pairs
from sogs_compressor.lod.moments import LOG_SCALE_LIMIT, determinants, log_ink, merge_pairs, merged_covariance
from sogs_compressor.lod.moments import covariances as splat_covariances
from sogs_compressor.lod.neighbours import nearest_neighbours
from sogs_compressor.order.morton import morton_order
from sogs_compressor.splats import COLUMNS, SplatSet

NEIGHBOURS = 8
"""Merge partners considered per splat: its NEIGHBOURS nearest others (and the splats that list it). On the real
guitar 8 gave the best sum over 50/25/12.5% of 4, 6, 8, 10 and 16; 16 was 0.5-0.8 dB lower at every level (more
distant partners with a low price), 4-10 differ by up to 0.6 dB either way per level."""

ROUND_FRACTION = 0.5
"""At most this fraction of a round's splats is merged away in that round."""

MATCH_ITERATIONS = 32
"""Parallel matching rounds per decimation round (the rest waits for the next decimation round)."""

CHUNK_ROWS = 1 << 15
"""Rows per device chunk when finding neighbours, pricing and merging: bounds the temporaries (at SH degree 3 a
chunk's NEIGHBOURS x CHUNK_ROWS merge prices need ~0.3 GB in float64)."""

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
        columns = _upload(current, device)
        neighbours = nearest_neighbours(columns["positions"], NEIGHBOURS, CHUNK_ROWS)
        keys = _edge_keys(columns, neighbours, variance_floor, seed + rounds)
        first, second, pair_key = match_pairs(neighbours, keys, MATCH_ITERATIONS, CHUNK_ROWS)
        del keys, neighbours
        if first.numel() > allowed:
            cheapest = torch.sort(torch.argsort(pair_key, stable=True)[:allowed]).values
            first, second = first[cheapest], second[cheapest]
        current = _merge(current, columns, first, second, variance_floor)
        del columns
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


def _upload(splats: SplatSet, device: torch.device) -> dict[str, torch.Tensor]:
    """The columns on ``device`` as they are (float32: the round's one device copy of the splats)."""
    return {name: torch.from_numpy(np.ascontiguousarray(getattr(splats, name))).to(device) for name in COLUMNS}


def _rows(columns: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rows ``index`` (any shape) of every column, in float64."""
    return {name: column[index].to(torch.float64) for name, column in columns.items()}


def _shapes(columns: dict[str, torch.Tensor], variance_floor: float) -> dict[str, torch.Tensor]:
    """Per splat, what the merge price needs of its shape (float64, 88 bytes per splat): covariance, log det and
    log ink, computed once per round rather than once per listed edge."""
    n = columns["positions"].shape[0]
    device = columns["positions"].device
    table = {"cov": torch.empty((n, 3, 3), dtype=torch.float64, device=device),
             "log_det": torch.empty(n, dtype=torch.float64, device=device),
             "log_ink": torch.empty(n, dtype=torch.float64, device=device)}
    for start in range(0, n, CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        log_scales = columns["log_scales"][rows].to(torch.float64)
        table["cov"][rows] = splat_covariances(log_scales, columns["rotations"][rows].to(torch.float64),
                                               variance_floor)
        table["log_det"][rows] = ((2 * log_scales.clamp(-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT))
                                  .clamp_min(math.log(variance_floor)).sum(-1))
        table["log_ink"][rows] = log_ink(log_scales, columns["opacity_logits"][rows].to(torch.float64))
    return table


def _edge_keys(columns: dict[str, torch.Tensor], neighbours: torch.Tensor, variance_floor: float,
               seed: int) -> torch.Tensor:
    """(N, NEIGHBOURS) int64 merge keys of the edges (i, neighbours[i, d])."""
    n, k = neighbours.shape
    shapes = _shapes(columns, variance_floor)
    keys = torch.empty((n, k), dtype=torch.int64, device=neighbours.device)
    for start in range(0, n, CHUNK_ROWS):
        rows = torch.arange(start, min(n, start + CHUNK_ROWS), device=neighbours.device)
        listed = neighbours[rows]
        costs = _edge_costs(columns, shapes, rows, listed.clamp_min(0), variance_floor)
        keys[rows] = edge_keys(costs, rows, listed, seed)
    return keys


def _edge_costs(columns: dict[str, torch.Tensor], shapes: dict[str, torch.Tensor], rows: torch.Tensor,
                partners: torch.Tensor, variance_floor: float) -> torch.Tensor:
    """(R, K) merge prices of each of ``rows`` with each of its ``partners`` (R, K)."""
    i, j = rows.unsqueeze(1), partners
    p = torch.sigmoid(shapes["log_ink"][i] - shapes["log_ink"][j])
    positions = columns["positions"]
    delta = positions[j].to(torch.float64) - positions[i].to(torch.float64)
    merged = merged_covariance(p, shapes["cov"][i], shapes["cov"][j], delta)
    log_det_merged = torch.log(determinants(merged).clamp_min(variance_floor ** 3))
    log_det = shapes["log_det"]
    shape = (0.5 * (log_det_merged - p * log_det[i] - (1 - p) * log_det[j])).clamp_min(0.0)
    # colour in float32, as stored: the difference of two nearby colours loses nothing that ranks merges
    colour = sum(((columns[name][i] - columns[name][j]) ** 2).sum(-1) for name in ("f_dc", "f_rest"))
    return shape + COLOR_WEIGHT * colour.to(torch.float64)


def _merge(splats: SplatSet, columns: dict[str, torch.Tensor], first: torch.Tensor, second: torch.Tensor,
           variance_floor: float) -> SplatSet:
    """``splats`` with each pair (first[k], second[k]) replaced by its merge, at first[k]'s place (``columns``:
    the same splats on the device)."""
    first_host, second_host = first.cpu().numpy(), second.cpu().numpy()
    keep = np.ones(splats.count, dtype=bool)
    keep[second_host] = False
    kept = np.flatnonzero(keep)
    out = splats.take(kept)
    slots = np.searchsorted(kept, first_host)  # where each pair's first row landed
    for start in range(0, first.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        merged = merge_pairs(_rows(columns, first[rows]), _rows(columns, second[rows]), variance_floor)
        for name in COLUMNS:
            getattr(out, name)[slots[rows]] = merged[name].to(torch.float32).cpu().numpy()
    return out
