"""Disjoint cheapest pairs among neighbours in a sequence, found in parallel (any torch device, deterministic).

Candidate edges join row ``i`` to rows ``i+1 .. i+W`` (the neighbours along a Morton curve); ``keys[i, d]`` ranks
the edge (i, i+d+1), smaller = merge sooner. Every unique ranking has one greedy matching (take the cheapest edge,
drop its rows, repeat); the parallel rounds here reach the same matching: each free row points at its cheapest edge
to a free row, and rows that point at each other are matched (such an edge is the cheapest around both of its
rows, so greedy would take it too). The cheapest edge overall always matches, so every round makes progress.
Keys are exact integers and ties impossible (a seeded hash breaks equal costs), so the result is the same on
any device and any run; there are no floating-point sums.
"""

from __future__ import annotations

import torch

NO_EDGE = torch.iinfo(torch.int64).max
"""Key of a missing edge (past the end of the sequence)."""

HASH_BITS = 31
"""Low bits of an edge key that hold the tie-breaking hash; the cost's float32 bits sit above them."""

_HASH_MASK = (1 << HASH_BITS) - 1
_HASH_MULTIPLIER = 0x45D9F3B


def edge_keys(costs: torch.Tensor, first_row: int, seed: int) -> torch.Tensor:
    """(R, W) int64 keys for the float costs of edges (first_row + r, first_row + r + d + 1).

    Non-negative float32 costs order like their bit patterns, so ``bits << 31 | hash(edge, seed)`` orders edges by
    cost and breaks ties by a seeded pseudo-random choice (NaN costs rank as +inf).
    """
    cost32 = torch.nan_to_num(costs.to(torch.float32), nan=float("inf")).clamp_min(0.0) + 0.0  # -0.0 -> +0.0
    bits = cost32.view(torch.int32).to(torch.int64)
    rows, width = costs.shape
    edge = (torch.arange(first_row, first_row + rows, device=costs.device).unsqueeze(1) * 64
            + torch.arange(width, device=costs.device))
    return (bits << HASH_BITS) | _mix(edge, seed)


def _mix(values: torch.Tensor, seed: int) -> torch.Tensor:
    """A 31-bit integer hash of int64 values (no overflow: every product stays below 2^58)."""
    x = (values ^ (values >> HASH_BITS) ^ (seed * 0x9E3779B)) & _HASH_MASK
    x = ((x ^ (x >> 16)) * _HASH_MULTIPLIER) & _HASH_MASK
    x = ((x ^ (x >> 16)) * _HASH_MULTIPLIER) & _HASH_MASK
    return x ^ (x >> 16)


def best_free_neighbours(keys: torch.Tensor, free: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For rows start..stop-1: the free neighbour with the smallest edge key (-1 if none, or the row is taken)
    and that key."""
    n, width = keys.shape
    device = keys.device
    rows = torch.arange(start, stop, device=device).unsqueeze(1)
    steps = torch.arange(1, width + 1, device=device)
    ahead = rows + steps
    ahead_ok = ahead < n
    ahead = ahead.clamp_max(n - 1)
    behind = rows - steps
    behind_ok = behind >= 0
    behind = behind.clamp_min(0)
    ahead_keys = torch.where(ahead_ok & free[ahead], keys[start:stop], NO_EDGE)
    behind_keys = torch.where(behind_ok & free[behind], keys[behind, steps - 1], NO_EDGE)
    all_keys = torch.cat([ahead_keys, behind_keys], dim=1)
    pick = torch.argmin(all_keys, dim=1, keepdim=True)
    key = all_keys.gather(1, pick).squeeze(1)
    partner = torch.cat([ahead, behind], dim=1).gather(1, pick).squeeze(1)
    ok = (key != NO_EDGE) & free[start:stop]
    return torch.where(ok, partner, -1), key


def match_pairs(keys: torch.Tensor, iterations: int, chunk_rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Disjoint pairs (a, b), a < b, with their edge keys, after up to ``iterations`` pointing rounds.

    ``keys``: (N, W) from ``edge_keys``. Work is done ``chunk_rows`` rows at a time (memory ~ chunk_rows x 2W x 17
    bytes beyond the (N,) state).
    """
    n = keys.shape[0]
    device = keys.device
    free = torch.ones(n, dtype=torch.bool, device=device)
    partner = torch.full((n,), -1, dtype=torch.int64, device=device)
    pair_key = torch.full((n,), NO_EDGE, dtype=torch.int64, device=device)
    rows = torch.arange(n, device=device)
    for _ in range(iterations):
        choice = torch.empty(n, dtype=torch.int64, device=device)
        choice_key = torch.empty(n, dtype=torch.int64, device=device)
        for start in range(0, n, chunk_rows):
            stop = min(n, start + chunk_rows)
            choice[start:stop], choice_key[start:stop] = best_free_neighbours(keys, free, start, stop)
        mutual = (choice >= 0) & (choice[choice.clamp_min(0)] == rows)
        if not bool(mutual.any()):
            break
        partner = torch.where(mutual, choice, partner)
        pair_key = torch.where(mutual, choice_key, pair_key)
        free &= ~mutual
        if not bool(free.any()):
            break
    first = torch.nonzero(partner > rows).squeeze(1)
    return first, partner[first], pair_key[first]
