"""Disjoint cheapest pairs in a neighbour graph, found in parallel (any torch device, deterministic).

The graph: row ``i`` has edges to ``neighbours[i, :]`` (``NONE`` = no edge), each ranked by ``keys[i, d]``
(smaller = merge sooner); an edge counts for both of its rows whichever row lists it. Every unique ranking has one
greedy matching (take the cheapest edge, drop its rows, repeat); the parallel rounds here reach the same matching:
each free row finds the smallest key among its edges to free rows (its own and those that list it, by an integer
``amin`` scatter), and an edge that is the smallest at both of its rows is taken (greedy would take it too). The
cheapest edge overall always matches, so every round makes progress. Keys are exact integers and ties impossible
(a seeded hash of the pair breaks equal costs), so the result is the same on any device and any run: there are
no floating-point sums, and a minimum does not depend on the order the scatter visits its values.
"""

from __future__ import annotations

import torch

NO_EDGE = torch.iinfo(torch.int64).max
"""Key of a missing edge."""

HASH_BITS = 31
"""Low bits of an edge key that hold the tie-breaking hash; the cost's float32 bits sit above them."""

_HASH_MASK = (1 << HASH_BITS) - 1
_HASH_MULTIPLIER = 0x45D9F3B


def edge_keys(costs: torch.Tensor, rows: torch.Tensor, neighbours: torch.Tensor, seed: int) -> torch.Tensor:
    """(R, K) int64 keys for the float costs of edges (rows[r], neighbours[r, d]) (NO_EDGE where none).

    Non-negative float32 costs order like their bit patterns, so ``bits << 31 | hash(pair, seed)`` orders edges by
    cost and breaks ties by a seeded pseudo-random choice (NaN costs rank as +inf). The hash is of the unordered
    pair, so an edge listed by both of its rows gets one tie-breaker.
    """
    cost32 = torch.nan_to_num(costs.to(torch.float32), nan=float("inf")).clamp_min(0.0) + 0.0  # -0.0 -> +0.0
    bits = cost32.view(torch.int32).to(torch.int64)
    here = rows.unsqueeze(1).expand_as(neighbours)
    low, high = torch.minimum(here, neighbours), torch.maximum(here, neighbours)
    keys = (bits << HASH_BITS) | _mix((low << HASH_BITS) | high, seed)
    return torch.where(neighbours >= 0, keys, NO_EDGE)


def _mix(values: torch.Tensor, seed: int) -> torch.Tensor:
    """A 31-bit integer hash of int64 values (no overflow: every product stays below 2^58)."""
    x = (values ^ (values >> HASH_BITS) ^ (seed * 0x9E3779B)) & _HASH_MASK
    x = ((x ^ (x >> 16)) * _HASH_MULTIPLIER) & _HASH_MASK
    x = ((x ^ (x >> 16)) * _HASH_MULTIPLIER) & _HASH_MASK
    return x ^ (x >> 16)


def match_pairs(neighbours: torch.Tensor, keys: torch.Tensor, iterations: int,
                chunk_rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Disjoint pairs (a, b), a < b, with their edge keys, after up to ``iterations`` rounds.

    ``neighbours``, ``keys``: (N, K). Each round looks only at the rows that still list an edge to a free row (later
    rounds are cheap). Work is done ``chunk_rows`` rows at a time: memory is ~57 bytes per row of state plus
    ~chunk_rows x K x 26 bytes of temporaries.
    """
    n = neighbours.shape[0]
    device = neighbours.device
    free = torch.ones(n, dtype=torch.bool, device=device)
    partner = torch.full((n,), -1, dtype=torch.int64, device=device)
    pair_key = torch.full((n,), NO_EDGE, dtype=torch.int64, device=device)
    every_row = torch.arange(n, device=device)
    active = every_row
    for _ in range(iterations):
        best = torch.full((n,), NO_EDGE, dtype=torch.int64, device=device)
        has_edge = torch.zeros(active.numel(), dtype=torch.bool, device=device)
        for start in range(0, active.numel(), chunk_rows):
            rows = active[start:start + chunk_rows]
            other, live = _live_edges(neighbours, keys, free, rows)
            smallest = live.min(dim=1).values
            has_edge[start:start + chunk_rows] = smallest != NO_EDGE
            best[rows] = torch.minimum(best[rows], smallest)
            best.scatter_reduce_(0, other.reshape(-1), live.reshape(-1), reduce="amin")
        active = active[has_edge]
        # Winners propose to each other by integer minimum (deterministic on any device, however the scatter runs).
        proposal = torch.full((n,), n, dtype=torch.int64, device=device)
        proposal_key = torch.full((n,), NO_EDGE, dtype=torch.int64, device=device)
        for start in range(0, active.numel(), chunk_rows):
            rows = active[start:start + chunk_rows]
            other, live = _live_edges(neighbours, keys, free, rows)
            wins = (live != NO_EDGE) & (live == best[rows].unsqueeze(1)) & (live == best[other])
            row, column = torch.nonzero(wins, as_tuple=True)
            a, b, key = rows[row], other[row, column], live[row, column]
            for here, there in ((a, b), (b, a)):
                proposal.scatter_reduce_(0, here, there, reduce="amin")
                proposal_key.scatter_reduce_(0, here, key, reduce="amin")
        # An edge listed by both rows wins twice with one key: the same proposal. Two edges of one row with equal
        # keys (equal float32 costs and a 31-bit hash collision) both win: the row keeps the smaller partner, and
        # only pairs that propose to each other are taken; the rest stay free for the next round.
        mutual = (proposal < n) & (proposal[proposal.clamp_max(n - 1)] == every_row)
        if not bool(mutual.any()):
            break
        partner = torch.where(mutual, proposal, partner)
        pair_key = torch.where(mutual, proposal_key, pair_key)
        free &= partner < 0
        active = active[free[active]]
        if active.numel() == 0:
            break
    first = torch.nonzero(partner > every_row).squeeze(1)
    return first, partner[first], pair_key[first]


def _live_edges(neighbours: torch.Tensor, keys: torch.Tensor, free: torch.Tensor,
                rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The neighbours of ``rows`` (NONE -> row 0) and their keys, NO_EDGE where either end is taken."""
    listed = neighbours[rows]
    other = listed.clamp_min(0)
    live = torch.where((listed >= 0) & free[rows].unsqueeze(1) & free[other], keys[rows], NO_EDGE)
    return other, live
