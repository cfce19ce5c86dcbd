"""The compute policy (``compute_policy.py``): which stage runs on the host or the device, when a Triton kernel is
used, and how a job's workers are planned. Each choice is checked for a CPU and a CUDA device (a CUDA device
object needs no GPU), so a changed answer for either fails here before it changes bytes or speed elsewhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sogs_compressor import compute_policy as policy

CPU, GPU = torch.device("cpu"), torch.device("cuda", 1)
REPO = Path(__file__).resolve().parents[1]


def test_the_gpu_takes_the_device_paths_and_the_cpu_the_host_paths():
    assert policy.quantize_device(CPU) is None and policy.quantize_device(GPU) == GPU
    for on_device in (policy.verify_on_device, policy.reorder_on_device, policy.plas_broadcast_dots,
                      policy.warm_up_device):
        assert (on_device(CPU), on_device(GPU)) == (False, True), on_device.__name__
    for on_host in (policy.plas_single_thread, policy.cluster_sums_by_index_add, policy.probed_search_on_host):
        assert (on_host(CPU), on_host(GPU)) == (True, False), on_host.__name__
    assert (policy.verify_block_rows(CPU), policy.verify_block_rows(GPU)) == (1 << 18, 1 << 21)


def test_k_means_stays_flat_a_thousand_times_longer_on_a_gpu():
    assert policy.flat_kmeans_work_limit("cpu") == 2e10
    assert policy.flat_kmeans_work_limit("cuda") == 2e13 == policy.flat_kmeans_work_limit("mps")


def test_off_a_gpu_no_triton_kernel_is_chosen_and_triton_is_not_imported():
    code = ("import sys, torch; from sogs_compressor import compute_policy as p; cpu = torch.device('cpu'); "
            "print(p.triton_assignment(cpu), p.triton_compositor('auto', cpu), p.triton_compositor('torch', cpu), "
            "'triton' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["False", "False", "False", "False"]


def test_an_asked_for_triton_compositor_that_cannot_run_is_refused(monkeypatch):
    from sogs_compressor.render import composite_triton

    monkeypatch.setattr(composite_triton, "composite_available", lambda device: False)
    with pytest.raises(ValueError, match="cannot run on cpu"):
        policy.triton_compositor("triton", CPU)


@pytest.mark.parametrize(("forced", "cpus", "overlap"), [
    ("", 2, False), ("", 4, True), ("1", 2, True), ("0", 16, False), (" 1 ", 1, True),
])
def test_the_original_renders_beside_the_encoder_on_enough_cpus_unless_forced(monkeypatch, forced, cpus, overlap):
    monkeypatch.setenv(policy.BACKGROUND_REFERENCE_ENV, forced)
    monkeypatch.setattr(policy, "usable_cpus", lambda: cpus)
    assert policy.reference_renders_overlap_encoder(CPU) is overlap
    assert policy.reference_renders_overlap_encoder(GPU) is False  # a GPU's check works on device tensors


def test_workers_share_out_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(policy, "usable_cpus", lambda: 16)
    assert [policy.worker_threads(n) for n in (1, 3, 16, 32)] == [16, 5, 1, 1]
    monkeypatch.setattr(policy, "usable_cpus", lambda: 1)
    assert policy.worker_threads(2) == 1
    monkeypatch.setattr(policy.os, "cpu_count", lambda: 64)  # a 64-core host, a container limited to 4 CPUs
    monkeypatch.setattr(policy, "usable_cpus", lambda: 4)
    assert policy.worker_threads(2) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own count per process
    assert policy.worker_threads(2) == 3


def test_the_codebook_programme_runs_in_the_kernel_only_where_kernels_run_and_it_fits(monkeypatch):
    pytest.importorskip("triton")
    from sogs_compressor.quantize import dp_triton

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not policy.triton_codebook_dp(CPU, 16)
    if torch.cuda.is_available():
        here = torch.device("cuda")
        assert policy.triton_codebook_dp(here, dp_triton.MAX_BOUNDS) == policy.triton_assignment(here)
        assert not policy.triton_codebook_dp(here, dp_triton.MAX_BOUNDS + 1)
