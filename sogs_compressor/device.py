"""The device a run uses (cpu or cuda[:N]), its memory cap and its out-of-memory errors; which stage runs on the
host or the device is ``compute_policy.py``, where Triton kernels can run ``triton_support.py``.

``auto`` takes the first CUDA device when one is usable and the CPU otherwise. An explicit ``cuda`` never falls
back to the CPU: it fails at once with a ``DeviceError`` that says why.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator

import torch

from sogs_compressor.cpus import thread_count
from sogs_compressor.errors import DeviceError
from sogs_compressor.units import human_bytes


def requested_device(requested: str | None = None) -> str:
    """The device asked for: ``requested``, else ``$SOGS_DEVICE``, else ``auto`` (normalised)."""
    return (requested or os.environ.get("SOGS_DEVICE") or "auto").strip().lower()


def resolve_device(requested: str | None = None) -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` (default: ``$SOGS_DEVICE`` or ``auto``) into a device."""
    name = requested_device(requested)
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        limit_gpu_memory(torch.device("cuda", 0))
        return torch.device("cuda", 0)
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            built = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise DeviceError(
                f"--device {name} was requested but no usable CUDA GPU was found "
                f"(torch {torch.__version__}, {built}); use --device cpu or auto, or run on a GPU instance"
            )
        index = 0
        if ":" in name:
            try:
                index = int(name.split(":", 1)[1])
            except ValueError:
                raise DeviceError(f"bad device {name!r}: expected cuda:N") from None
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise DeviceError(f"--device {name} was requested but only {count} CUDA device(s) exist")
        device = torch.device("cuda", index)
        limit_gpu_memory(device)
        return device
    raise DeviceError(f"unknown device {name!r}: expected auto, cpu, cuda or cuda:N")


GPU_MEMORY_FRACTION_ENV = "SOGS_GPU_MEMORY_FRACTION"


def limit_gpu_memory(device: torch.device) -> None:
    """Cap this process's share of the GPU's memory at ``$SOGS_GPU_MEMORY_FRACTION`` (0 < f <= 1) when set, e.g. to
    share one GPU between jobs; past the cap an allocation fails as out of GPU memory (exit 20)."""
    value = os.environ.get(GPU_MEMORY_FRACTION_ENV, "").strip()
    if not value:
        return
    try:
        fraction = float(value)
    except ValueError:
        fraction = math.nan
    if not 0.0 < fraction <= 1.0:
        raise DeviceError(f"{GPU_MEMORY_FRACTION_ENV} must be a number in (0, 1], not {value!r}")
    torch.cuda.set_per_process_memory_fraction(fraction, device)


def device_name(device: torch.device) -> str:
    """A human name for reports: ``cpu`` or the GPU's product name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def out_of_memory_error(device: torch.device, stage: str, needed_bytes: int | None = None) -> DeviceError:
    """A DeviceError for a CUDA out-of-memory in ``stage`` that says how much was needed and available."""
    parts = [f"out of GPU memory on {device} during {stage}"]
    if needed_bytes:
        parts.append(f"needed about {human_bytes(needed_bytes)} more")
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        parts.append(f"{human_bytes(free)} free of {human_bytes(total)}")
    return DeviceError("; ".join(parts) + " (try a smaller --chunk-size or --device cpu)")


def configure_threads() -> int:
    """Size torch's CPU thread pool to the CPUs this process may use (``cpus.thread_count``); returns it.

    torch sizes it from the host's cores, which oversubscribes a container with a CPU quota or a restricted
    affinity mask.
    """
    threads = thread_count()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def out_of_memory_as(device: torch.device, stage: str) -> Iterator[None]:
    """Turn a CUDA out-of-memory inside the block into ``out_of_memory_error`` (exit 20, one line), after giving
    the cached blocks back so that the next scene of a batch starts clean."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise out_of_memory_error(device, stage) from None


@contextlib.contextmanager
def own_stream(device: torch.device | None) -> Iterator[None]:
    """Run the block's device work on a CUDA stream of its own (nothing elsewhere).

    Work queued by another thread on the default stream (the k-means) would otherwise run strictly before the
    block's small kernels and its copies back to the host: a codebook built beside the k-means waited for every
    k-means kernel queued before each of its steps.
    """
    if device is None or device.type != "cuda":
        yield
        return
    with torch.cuda.stream(torch.cuda.Stream(device)):
        yield


configure_threads()  # once, when the package first needs torch
