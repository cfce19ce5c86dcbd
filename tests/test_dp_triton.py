"""The rate-aware codebook's dynamic programme on CUDA (quantize/dp_triton.py) counts the host's groups exactly.

Runs the kernel through Triton's interpreter on the CPU (as CI has no GPU), on a real codebook problem and on a
cost matrix full of exact ties, where only numpy's first-index tie rule gives numpy's counts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from triton_interpreter import run_interpreted

from sogs_compressor.quantize.value_ops import dp_group_counts

SCRIPT = """
import json, numpy as np, torch
from sogs_compressor.quantize import dp_triton, codebook_rd as rd
from sogs_compressor.quantize.codebook import _SortedStats, blend_bin_edges
from sogs_compressor.quantize.value_ops import dp_group_counts
import sys
sys.path.insert(0, "tests")
from test_dp_triton import tied_costs

rng = np.random.default_rng(0)
values = np.sort(np.concatenate([rng.normal(-4, 1, 5000), rng.normal(-1, 2, 1000)])).astype(np.float32)
stats = _SortedStats(values)
bounds = np.concatenate(([0], blend_bin_edges(stats.values, 48), [values.size]))
problems = {"codebook": (rd._group_costs(stats, bounds, 0.02), np.array([0.0, 0.05, 0.2, 1.0, 5.0])),
            "ties": (tied_costs(24), np.array([0.0, 1.0, 2.0, 3.0]))}
out = {}
for name, (costs, penalties) in problems.items():
    out[name] = {"host": dp_group_counts(costs, penalties).tolist(),
                 "kernel": dp_triton.group_counts(costs, penalties, torch.device("cpu")).tolist()}
print(json.dumps(out))
"""


def tied_costs(bins: int) -> np.ndarray:
    """Small-integer group costs (inf where i >= j): most steps of the programme have several equal minima."""
    i, j = np.meshgrid(np.arange(bins + 1), np.arange(bins + 1), indexing="ij")
    costs = ((j - i) % 3 + (j - i) // 4).astype(np.float64)
    costs[i >= j] = np.inf
    return costs


def last_index_group_counts(costs: np.ndarray, penalties: np.ndarray) -> np.ndarray:
    """The same programme breaking ties towards the last index (what a careless kernel might do)."""
    bins = costs.shape[0] - 1
    best = np.zeros((penalties.size, bins + 1))
    groups = np.zeros((penalties.size, bins + 1), np.int64)
    rows = np.arange(penalties.size)
    for j in range(1, bins + 1):
        total = best[:, :j] + costs[:j, j]
        i = j - 1 - np.argmin(total[:, ::-1], axis=1)
        best[:, j] = total[rows, i] + penalties
        groups[:, j] = groups[rows, i] + 1
    return groups[:, bins]


def test_the_tie_rule_matters_on_the_tied_problem():
    """So the interpreter test below can fail: another tie rule changes the counts."""
    costs, penalties = tied_costs(24), np.array([0.0, 1.0, 2.0, 3.0])
    assert not np.array_equal(last_index_group_counts(costs, penalties), dp_group_counts(costs, penalties))


def test_kernel_counts_the_hosts_groups_in_the_triton_interpreter():
    # Triton 3.6's interpreter fails on the kernel's scalar loads (the compiled kernel runs: the CUDA test below)
    result = run_interpreted(SCRIPT, (3, 7), "Triton >= 3.7's interpreter (the version torch 2.13 pins)")
    for name, counts in result.items():
        assert counts["kernel"] == counts["host"], name
    assert len(set(result["codebook"]["host"])) > 1  # the penalties span different partitions


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_kernel_counts_the_hosts_groups_on_cuda():
    from sogs_compressor.quantize import codebook_rd as rd
    from sogs_compressor.quantize import dp_triton
    from sogs_compressor.quantize.codebook import (
        DP_BINS,
        SEED_BINS,
        _SortedStats,
        blend_bin_edges,
        split_heavy_bins,
    )

    rng = np.random.default_rng(1)
    values = np.sort(np.concatenate([rng.normal(-4, 1, 700_000), rng.standard_cauchy(5_000)])).astype(np.float32)
    stats = _SortedStats(values)
    bounds = np.concatenate(([0], split_heavy_bins(stats, blend_bin_edges(stats.values, SEED_BINS), DP_BINS),
                             [values.size]))
    costs = rd._group_costs(stats, bounds, 0.01)
    penalties = np.linspace(0.0, 50.0, 31)
    device = torch.device("cuda")
    assert np.array_equal(dp_triton.group_counts(costs, penalties, device), dp_group_counts(costs, penalties))
    ties = tied_costs(300)
    assert np.array_equal(dp_triton.group_counts(ties, penalties[:8], device), dp_group_counts(ties, penalties[:8]))
