"""Put a splat set into its texture order, in place: on the GPU when one encodes, with threads on the host otherwise.

The pipeline owns the set it read, so no second copy of the whole set is made. On CUDA each column goes to the
device, is permuted there and comes back into its own host buffer: no host temporary at all (the threaded host
gather needs one column's worth, up to 1.8 GB for 10M SH3 splats, which the allocator then tends to keep).
"""

from __future__ import annotations

import numpy as np
import torch

from sogs_compressor.compute_policy import reorder_on_device
from sogs_compressor.splats import COLUMNS, SplatSet, gather_rows


def reorder_in_place(splats: SplatSet, permutation: np.ndarray, device: torch.device) -> SplatSet:
    """``splats`` with every column in ``permutation`` order (a permutation of all rows); returns ``splats``."""
    permutation = np.asarray(permutation, dtype=np.int64)
    if permutation.shape != (splats.count,):
        raise ValueError(f"a permutation of {splats.count} rows was expected, got shape {permutation.shape}")
    if not reorder_on_device(device):
        return splats.reorder_in_place(permutation)
    index = torch.from_numpy(permutation).to(device)
    for name in COLUMNS:
        column = getattr(splats, name)
        if not (column.flags.writeable and column.flags.c_contiguous) or column.size == 0:
            setattr(splats, name, gather_rows(column, permutation))
            continue
        host = torch.from_numpy(column)
        host.copy_(host.to(device).index_select(0, index))
    torch.cuda.synchronize(device)
    return splats
