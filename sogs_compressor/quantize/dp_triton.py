"""The rate-aware codebook's dynamic programme on CUDA (Triton), with numpy's results bit for bit.

``codebook_rd.ecsq_partition`` searches for the smallest per-group penalty that keeps a codebook within 256 entries:
about ten rounds, each a dynamic programme over ~1,024 bins for 31 penalties at once. On the host that is 1,024
small numpy steps per round, ~0.5 s per codebook, run in a thread beside the k-means, whose kernel launches it
delays. Here one program per penalty walks the bins in one launch; each step is the same float64 ``best + cost``
(one IEEE rounding, as numpy's), the same minimum, the first index of that minimum (numpy's ``argmin`` tie rule)
and the same ``+ penalty``, so the group counts, and the codebook, are the host's.

Imports without Triton; ``TRITON_INTERPRET=1`` (set before import) runs it on CPU tensors for the tests.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

try:  # Triton is optional: absent on CPU-only installs.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

from sogs_compressor.triton_support import device_key

BLOCK = 2048
"""Bin bounds (bins + 1) a program holds: ``codebook.DP_BINS`` (1,024) bins need 1,025; fixed, so the kernel is
compiled once (``warm_up``)."""
MAX_BOUNDS = 4096
"""Most bin bounds the kernel takes (a second compile, with this block)."""


if triton is not None:

    @triton.jit(do_not_specialize=["bins", "stride"])  # one compile for every bin count (see assign_triton)
    def _group_counts_kernel(costs_t_ptr, penalties_ptr, best_ptr, groups_ptr, bins, stride,
                             BLOCK: tl.constexpr):
        """For penalty p: best[j] = min_i<j (best[i] + cost[i, j]) + p, groups[j] = groups[argmin] + 1.

        ``costs_t`` is the transposed cost matrix (row j holds cost[., j]); ``best`` and ``groups`` rows start
        at 0 and are written in place, so each step reads what the step before stored (hence the barrier).
        """
        p = tl.program_id(0)
        penalty = tl.load(penalties_ptr + p)
        offsets = tl.arange(0, BLOCK)
        best_row = best_ptr + p * stride
        groups_row = groups_ptr + p * stride
        for j in range(1, bins + 1):
            earlier = offsets < j
            best = tl.load(best_row + offsets, mask=earlier, other=float("inf"))
            cost = tl.load(costs_t_ptr + j * stride + offsets, mask=earlier, other=float("inf"))
            total = best + cost
            lowest = tl.min(total, axis=0)
            first = tl.min(tl.where(total == lowest, offsets, BLOCK), axis=0)
            groups = tl.load(groups_row + first)
            tl.store(best_row + j, lowest + penalty)
            tl.store(groups_row + j, groups + 1)
            tl.debug_barrier()


def group_counts(costs: np.ndarray, penalties: np.ndarray, device: torch.device) -> np.ndarray:
    """``value_ops.dp_group_counts`` on ``device``: int64 group count of the optimal partition per penalty."""
    bounds = costs.shape[0]
    if bounds > MAX_BOUNDS:
        raise ValueError(f"{bounds - 1} bins is more than the kernel holds ({MAX_BOUNDS - 1})")
    block = BLOCK if bounds <= BLOCK else MAX_BOUNDS  # one compile for every codebook of DP_BINS bins
    costs_t = torch.from_numpy(np.ascontiguousarray(costs.T, dtype=np.float64)).to(device)
    penalties_t = torch.from_numpy(np.ascontiguousarray(penalties, dtype=np.float64)).to(device)
    best = torch.zeros(penalties_t.shape[0], bounds, dtype=torch.float64, device=device)
    groups = torch.zeros(penalties_t.shape[0], bounds, dtype=torch.int64, device=device)
    _group_counts_kernel[(penalties_t.shape[0],)](costs_t, penalties_t, best, groups, bounds - 1, bounds,
                                                  BLOCK=block, num_warps=4)
    return groups[:, -1].cpu().numpy()


_compile_state: dict[str, str] = {}
"""Per device: ``compiling`` while a thread compiles the kernel, then ``done`` (compiled, or failed to)."""
_compile_lock = threading.Lock()


def warm_up(device: torch.device) -> None:
    """Compile the kernel for ``device`` on a tiny problem (a fresh process would otherwise compile it inside its
    first rate-aware codebook); once per device and process."""
    key = device_key(device)
    with _compile_lock:
        if key in _compile_state:
            return
        _compile_state[key] = "compiling"
    try:
        costs = np.triu(np.ones((4, 4)), k=1)
        costs[costs == 0] = np.inf
        group_counts(costs, np.zeros(2), device)
    finally:
        _compile_state[key] = "done"


def kernel_ready(device: torch.device) -> bool:
    """Whether to use the kernel now: False while another thread compiles it (the host's programme gives the same
    counts meanwhile, instead of a second compile beside the first); compiles it here if nobody has."""
    if _compile_state.get(device_key(device)) is None:
        warm_up(device)
    return _compile_state.get(device_key(device)) == "done"
