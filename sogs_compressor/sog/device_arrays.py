"""The codec's device twins: each attribute module's ``*_on_device`` functions match the numpy code beside them.

The numpy functions and ``quantize/codebook*.py`` stay the reference; every device twin takes and returns the
same host (numpy) arrays as its namesake, plus the ``device`` to compute on, and must give the same bytes. Most
of the arithmetic is IEEE-exact in both (float64 ``+ - * /``, ``sqrt``, comparisons, min/argmax,
round-half-to-even), evaluated in the same order. ``log1p`` and ``exp`` are not: numpy's libm and torch's
kernels (Sleef on CPU, libdevice on CUDA) may differ in the last bit. Where such a value then gets rounded to
an integer or compared with a threshold, every result that an error of a few ulps could flip is recomputed on
the host by the numpy function itself ("guard band": on real scenes about none in a billion values).

On the CPU the bytes are identical (tested). On an H100 the only measured difference is in ``quats``: 1 texel in
a million (14 in 4M) off by one byte, where a rotation component sits on a rounding boundary and CUDA's float64
arithmetic differs in the last bit (bench/check_gpu_encode.py, bench/RESULTS.md) — within float tolerance.

This module holds what the twins share; they import it (and torch) when called.
"""

from __future__ import annotations

import numpy as np
import torch


def to_device(values: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values)).to(device=device, dtype=dtype)


def near_half(r: torch.Tensor, bound: torch.Tensor | float) -> torch.Tensor:
    """Where ``round(r)`` could change under an error of ``bound``: r within ``bound`` of a half-integer."""
    return (r - torch.floor(r) - 0.5).abs() <= bound
