"""Where each stage's work runs, in one place: host (numpy, or torch on the CPU) or the device, when a Triton kernel
is used, the sizes past which work changes method or place, and how a job spreads scenes over workers.

The stages ask these functions instead of each testing ``device.type`` on its own; each answer says why (the
measurements are in bench/RESULTS.md). Which device the run uses is ``device.resolve_device``; whether Triton can
run at all is ``triton_support``. This module imports neither torch nor Triton: a CPU process that never needs
Triton never loads it (its import costs ~0.2 s), and the command line may ask before torch loads.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sogs_compressor.cpus import usable_cpus

if TYPE_CHECKING:
    import torch


def on_gpu(device: torch.device) -> bool:
    return device.type == "cuda"


# ---- quantize (sog/encode.py, lod/streamed.py, quantize/) -------------------------------------------------------

QUANTIZE_ON_DEVICE = frozenset({"cuda"})
"""Device types on which the per-splat quantize work runs in torch (the codec's ``*_on_device`` encoders in
``sog/``: the host's bytes but for ~1 quats texel per million, bench/RESULTS.md); elsewhere the numpy reference
runs on the host, which is faster than torch on a CPU."""


def quantize_device(device: torch.device) -> torch.device | None:
    """The device for the per-splat quantize work, or None for the numpy reference."""
    return device if device.type in QUANTIZE_ON_DEVICE else None


FLAT_KMEANS_WORK_LIMIT = {"cpu": 2e10, "cuda": 2e13}
"""Largest N*k*D (multiply-adds per Lloyd iteration) for which ``auto`` k-means runs flat Lloyd on each device type.

On an H100, flat Lloyd (chunked matmul + argmin) beat the hierarchical method at N = 1M, D = 24, k = 65,536
(5.3 s vs 9.0 s for 10 iterations): the per-cluster loop is launch-bound there, so CUDA stays flat up to
4M x 45 x 65,536 (1.2e13; about 27 s without the fused Triton kernel, per performance-floor.md)."""


def flat_kmeans_work_limit(device_type: str) -> float:
    """``FLAT_KMEANS_WORK_LIMIT`` for a device type; other accelerators take CUDA's."""
    return FLAT_KMEANS_WORK_LIMIT.get(device_type, FLAT_KMEANS_WORK_LIMIT["cuda"])


def cluster_sums_by_index_add(device: torch.device) -> bool:
    """Whether k-means sums each cluster's rows with ``index_add_`` (``kmeans.segment_sums``): on the CPU it runs
    in index order; on CUDA it uses atomics (run-to-run float noise), so there the rows are sorted by label and
    summed by float64 prefix sums instead. Either way the same bytes on every run."""
    return device.type == "cpu"


DISTANCE_BLOCK_BYTES = {"cpu": 8 * 2**20, "cuda": 256 * 2**20}
"""Bytes of one (rows x centroids) float32 distance block of the k-means assignment (``quantize/assign.py``) and
of the probed search, by device type. On the CPU a block that stays in cache is written and scanned for its
minimum about twice as fast (1M x 256 centroids x 24 on 2 cores: 0.92 s with 256 MiB blocks, 0.48 s with 8 MiB,
bench/RESULTS.md); a GPU wants large blocks. The labels and distances keep their bits whatever the block size,
as long as no block is a few rows short (``assign.row_blocks`` joins a short last block to the one before;
tests/test_kmeans.py checks it)."""
MIN_DISTANCE_BLOCK_ROWS = 256
"""Fewest rows per distance block, whatever the centroid count (a GEMM of a few rows runs at a fraction of its speed)."""


def distance_block_rows(device: torch.device, centroids: int) -> int:
    """Rows per distance block against ``centroids`` centroids on ``device`` (``DISTANCE_BLOCK_BYTES``)."""
    budget = DISTANCE_BLOCK_BYTES.get(device.type, DISTANCE_BLOCK_BYTES["cuda"])
    return max(MIN_DISTANCE_BLOCK_ROWS, budget // (4 * max(1, centroids)))


def probed_search_on_host(device: torch.device) -> bool:
    """Whether the hierarchical k-means' probed search takes its CPU form (``kmeans._probed_nearest_host``): the
    same arithmetic in fewer small operations, because on the CPU each operation wakes the thread pool and that
    wake-up, not the arithmetic, was most of the time (bench/RESULTS.md, "CPU path")."""
    return device.type == "cpu"


def triton_assignment(device: torch.device) -> bool:
    """Whether the k-means assignment uses the fused Triton distance+argmin kernel (``quantize/assign_triton``): on
    a CUDA device Triton supports; off CUDA decided without importing Triton. A broken optional kernel (its module
    or Triton failing to import or to answer) means the torch path, never a failure."""
    if not on_gpu(device):
        return False
    try:
        from sogs_compressor.triton_support import triton_available
    except ImportError:
        return False
    try:
        return triton_available(device)
    except Exception:  # a broken optional kernel must not break the torch path
        return False


def triton_codebook_dp(device: torch.device, bounds: int) -> bool:
    """Whether a codebook's penalty search runs its dynamic programmes in the Triton kernel
    (``quantize/dp_triton``, through ``sog.codebook.DeviceOps``): on a device where the kernels run, for at most
    ``dp_triton.MAX_BOUNDS`` bins (a CUDA device Triton supports, or any under Triton's interpreter); elsewhere the
    host's programme, which gives the same counts. Asked only where the codebooks run on a device (imports Triton)."""
    from sogs_compressor.quantize import dp_triton
    from sogs_compressor.triton_support import kernels_runnable

    return bounds <= dp_triton.MAX_BOUNDS and kernels_runnable(device)


# ---- order (order/) ----------------------------------------------------------------------------------------------

def reorder_on_device(device: torch.device) -> bool:
    """Whether the splat columns are permuted on the GPU (``order/reorder.py``): each column goes there and back
    into its own host buffer, with no host temporary (the threaded host gather needs one column's worth, up to
    1.8 GB for 10M SH3 splats); off a GPU the host gather runs."""
    return on_gpu(device)


def plas_single_thread(device: torch.device) -> bool:
    """Whether PLAS runs on one intra-op thread: on the CPU it is thousands of small ops, and on a shared 2-core
    machine two OpenMP threads made it 7x (100K splats) to 50x (1K splats) slower than one."""
    return device.type == "cpu"


def plas_broadcast_dots(device: torch.device) -> bool:
    """Whether PLAS forms its (T, G, 4, 4) group dot products by broadcasting and reducing (``plas.group_dots``):
    per-group 4x4 batched GEMMs are slow on a GPU (~47% of PLAS time at 1M on an H100); on the CPU the einsum is
    the faster."""
    return on_gpu(device)


# ---- verify and the quality check (pipeline.py, verify/, render/) ------------------------------------------------

def verify_on_device(device: torch.device) -> bool:
    """Whether the verifier and the quality check keep the decoded scene on ``device`` (``verify/decode.py``,
    ``verify/metrics_torch.py``): on a GPU. On the CPU the numpy verifier is faster than torch's CPU kernels."""
    return on_gpu(device)


def verify_block_rows(device: torch.device) -> int:
    """Rows the device verifier compares at a time: about 1 GB of float64 temporaries at SH 3 on a GPU, tens of MB
    on the CPU."""
    return 1 << 21 if on_gpu(device) else 1 << 18


BACKGROUND_REFERENCE_MIN_CPUS = 4
"""CPUs below which the original's renders wait for the encoder: on the 2-core VM, loaded by other work, the
overlap only made the two compete (bench/RESULTS.md, "CPU path, the 2-core VM")."""
BACKGROUND_REFERENCE_ENV = "SOGS_BACKGROUND_REFERENCE"


def reference_renders_overlap_encoder(device: torch.device) -> bool:
    """Whether the quality check's renders of the original run on a thread beside the encoder
    (``render/background.py``): on the CPU path with enough CPUs to share (a GPU's check is fast and works on
    device tensors). ``$SOGS_BACKGROUND_REFERENCE`` = 1 / 0 forces it on / off (benchmarks)."""
    if verify_on_device(device):
        return False
    forced = os.environ.get(BACKGROUND_REFERENCE_ENV, "").strip()
    return forced == "1" or (forced != "0" and usable_cpus() >= BACKGROUND_REFERENCE_MIN_CPUS)


def triton_compositor(compositor: str, device: torch.device) -> bool:
    """Whether the renderer composites with the Triton kernel: ``torch`` never, ``triton`` always (ValueError
    where it cannot run), ``auto`` on a CUDA device Triton supports. ``auto`` off a CUDA device decides without
    importing Triton (~0.2 s of a CPU process's start, bench/RESULTS.md)."""
    if compositor == "torch" or (compositor == "auto" and not on_gpu(device)):
        return False
    from sogs_compressor.render.composite_triton import composite_available
    from sogs_compressor.triton_support import triton_available

    if compositor == "triton":
        if not composite_available(device):
            raise ValueError(f"the Triton compositor cannot run on {device} here")
        return True
    return triton_available(device)


def warm_up_device(device: torch.device) -> bool:
    """Whether the GPU's one-time work (CUDA start-up, Triton kernel compiles) is started in the background while
    the scene is read (``steps.prepare_device``): only on a GPU; the CPU path never imports Triton."""
    return on_gpu(device)


# ---- the job's workers (job/workers.py) --------------------------------------------------------------------------

def plan_devices(requested_workers: int | None, device_type: str, device_index: int | None,
                 gpu_count: int, explicit_index: bool) -> list[str]:
    """One device name per worker process.

    CUDA: by default one worker per visible GPU (one on the GPU named by ``cuda:N``); ``--workers N`` spreads
    N workers round-robin over the GPUs. CPU: ``--workers`` processes (default 1): the CPU path already uses
    every core through torch's and libwebp's threads.
    """
    if device_type != "cuda":
        return ["cpu"] * (requested_workers or 1)
    if explicit_index and requested_workers is None:
        return [f"cuda:{device_index or 0}"]
    count = requested_workers or max(1, gpu_count)
    return [f"cuda:{i % max(1, gpu_count)}" for i in range(count)]


def worker_threads(workers: int) -> int:
    """torch threads of each CPU worker: the CPUs this process may use (affinity mask, cgroup quota) shared out, so
    that workers do not oversubscribe them; ``$OMP_NUM_THREADS``, when set, is each worker's own count."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, usable_cpus() // max(1, workers))
