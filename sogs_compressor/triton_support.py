"""Where this package's Triton kernels can run: one answer for the k-means assignment, the codebook programme and
the renderer's compositor (``quantize/assign_triton.py``, ``quantize/dp_triton.py``, ``render/composite_triton.py``).

Triton is optional (absent on CPU-only installs), and importing it costs a CPU process ~0.2 s, so callers off a
CUDA device decide without importing this module. With ``TRITON_INTERPRET=1`` set before import, the kernels also
run on CPU tensors through Triton's interpreter, which is how the tests check them without a GPU.
"""

from __future__ import annotations

import os

import torch

try:  # Triton is optional: absent on CPU-only installs.
    import triton
except ImportError:  # pragma: no cover - depends on the environment
    triton = None

MIN_CAPABILITY = (8, 0)
"""Triton supports NVIDIA GPUs of compute capability 8.0 and newer (its README); since Triton 3.3 a ``tl.dot`` on
older cards (T4, V100) compiles to plain FMA, no faster than the chunked PyTorch path, which those cards use."""


def interpreting() -> bool:
    """Whether Triton kernels run through its interpreter (``TRITON_INTERPRET=1``, e.g. on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_available(device: torch.device) -> bool:
    """True when ``device`` is a usable CUDA device of a capability Triton supports and Triton imports."""
    if triton is None or device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= MIN_CAPABILITY


def kernels_runnable(device: torch.device) -> bool:
    """True where this package's Triton kernels run: a CUDA device Triton supports, or any device under the
    interpreter (``TRITON_INTERPRET=1``)."""
    if triton is None:
        return False
    return interpreting() or triton_available(device)


def device_key(device: torch.device) -> str:
    """One name per device (``cuda:N`` with the index made explicit), for per-device, per-process kernel state."""
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index}"
