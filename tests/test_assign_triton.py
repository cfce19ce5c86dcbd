"""The fused Triton nearest-centroid kernel and its float64 reference.

On CPU the kernel runs through Triton's interpreter (TRITON_INTERPRET=1 must be set before triton is
imported, so that check runs in a subprocess); the CUDA check runs only where a GPU is present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sogs_compressor.quantize.assign_triton import (
    padded_dim,
    prepare_centroids,
    reference_nearest_centroid,
    triton_available,
    triton_nearest_centroid,
)

REPO = Path(__file__).resolve().parents[1]


def _data(n: int, k: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(k, d, generator=g)


def test_cpu_device_never_selects_triton() -> None:
    assert triton_available(torch.device("cpu")) is False


@pytest.mark.parametrize(
    ("d", "expected"), [(1, 16), (9, 16), (16, 16), (17, 32), (24, 32), (45, 64), (64, 64)]
)
def test_padded_dim(d: int, expected: int) -> None:
    assert padded_dim(d) == expected


def test_reference_matches_cdist_argmin() -> None:
    x, c = _data(500, 70, 24, seed=1)
    labels, dists = reference_nearest_centroid(x, c, chunk_rows=64)
    full = torch.cdist(x.double(), c.double()) ** 2
    assert torch.equal(labels, full.argmin(dim=1))
    torch.testing.assert_close(dists, full.min(dim=1).values, rtol=1e-9, atol=1e-9)


def test_prepare_centroids_pads_with_unreachable_columns() -> None:
    _, c = _data(1, 70, 45, seed=2)
    ct, bias = prepare_centroids(c, block_n=32)
    assert ct.shape == (64, 96) and bias.shape == (96,)
    torch.testing.assert_close(ct[:45, :70], c.t())
    assert torch.all(ct[45:] == 0) and torch.all(ct[:, 70:] == 0)
    torch.testing.assert_close(bias[:70], -0.5 * (c * c).sum(1))
    assert torch.all(torch.isneginf(bias[70:]))


@pytest.mark.parametrize(
    ("points", "centroids", "message"),
    [
        (torch.zeros(4, 3), torch.zeros(5, 4), "dimension mismatch"),
        (torch.zeros(4, 3), torch.zeros(0, 3), "no centroids"),
        (torch.zeros(4, 3, dtype=torch.float64), torch.zeros(5, 3, dtype=torch.float64), "float32"),
        (torch.zeros(4), torch.zeros(5, 3), "2-D"),
    ],
)
def test_bad_inputs_are_rejected(points: torch.Tensor, centroids: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reference_nearest_centroid(points, centroids)


def test_kernel_refuses_cpu_tensors_outside_the_interpreter() -> None:
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("running under the Triton interpreter")
    x, c = _data(8, 4, 9, seed=3)
    with pytest.raises(ValueError, match="CUDA"):
        triton_nearest_centroid(x, c)


INTERPRETER_SCRIPT = textwrap.dedent(
    """
    import json, torch
    from sogs_compressor.quantize.assign_triton import reference_nearest_centroid, triton_nearest_centroid
    g = torch.Generator().manual_seed(0)
    out = {}
    for d in (9, 24, 45):
        # N and K deliberately not multiples of the tile sizes
        x = torch.randn(333, d, generator=g)
        c = torch.randn(77, d, generator=g)
        x[:20] = c[:20] + 1e-3 * torch.randn(20, d, generator=g)  # points sitting on centroids
        ref, _ = reference_nearest_centroid(x, c)
        for precision in ("ieee", "tf32"):
            lab = triton_nearest_centroid(x, c, precision=precision, block_m=32, block_n=32, num_warps=1)
            out[f"{d}-{precision}"] = int((lab != ref).sum())
        # fp16: the chosen centroid is as near as the true one, up to float16 rounding of the cross term
        lab = triton_nearest_centroid(x, c, precision="fp16", block_m=32, block_n=32, num_warps=1)
        chosen = ((x.double() - c[lab].double()) ** 2).sum(dim=1)
        best = ((x.double() - c[ref].double()) ** 2).sum(dim=1)
        out[f"{d}-fp16-excess"] = float(((chosen - best) / best.clamp_min(1e-12)).max())
        out[f"{d}-fp16-disagree"] = int((lab != ref).sum())
        big = x * 1e5  # beyond float16: the fp32 path runs instead
        out[f"{d}-fp16-big"] = int((triton_nearest_centroid(big, c * 1e5, precision="fp16", block_m=32,
                                                             block_n=32) != reference_nearest_centroid(
                                                                 big, c * 1e5)[0]).sum())
    # ties go to the lowest index: centroid 5 duplicated in the same column slot of later tiles (37, 69)
    # and in another slot (40)
    c = torch.randn(80, 24, generator=g)
    for dup in (37, 40, 69):
        c[dup] = c[5]
    x = c[5:6].repeat(3, 1)
    out["tie"] = triton_nearest_centroid(x, c, precision="ieee", block_m=16, block_n=32).tolist()
    nan = torch.full((2, 24), float("nan"))
    out["nan"] = triton_nearest_centroid(nan, c, precision="ieee", block_m=16, block_n=32).tolist()
    print(json.dumps(out))
    """
)


def test_kernel_matches_reference_in_triton_interpreter() -> None:
    triton = pytest.importorskip("triton")
    if tuple(int(part) for part in triton.__version__.split(".")[:2]) < (3, 9):
        pytest.skip("Triton's interpreter before 3.9 fails inside this kernel (TypeError, seen with 3.6 on the "
                    "GPU machine); there the compiled kernel is checked on CUDA instead")
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=path)
    proc = subprocess.run(
        [sys.executable, "-c", INTERPRETER_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # The interpreter computes the dot in numpy fp32 whatever the precision: exact agreement expected.
    for d in (9, 24, 45):
        assert result[f"{d}-ieee"] == 0
        assert result[f"{d}-tf32"] == 0
        assert result[f"{d}-fp16-excess"] < 0.02 and result[f"{d}-fp16-disagree"] <= 10
        assert result[f"{d}-fp16-big"] == 0
    assert result["tie"] == [5, 5, 5]
    assert result["nan"] == [0, 0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("d", [9, 24, 45])
def test_kernel_on_cuda_matches_float64_reference(d: int) -> None:
    device = torch.device("cuda")
    assert triton_available(device)
    x, c = _data(20000, 3000, d, seed=d)
    x, c = x.to(device), c.to(device)
    ref, ref_d = reference_nearest_centroid(x, c)
    exact = triton_nearest_centroid(x, c, precision="ieee")
    assert torch.equal(exact, ref)
    for precision in ("tf32", "fp16", None):  # None: the default (fp16)
        fast = triton_nearest_centroid(x, c, precision=precision)
        chosen = ((x.double() - c.double()[fast]) ** 2).sum(1)
        # tf32 and fp16 may pick a near-tie: bounded excess distance, and rarely.
        assert float(((chosen - ref_d) / ref_d).max()) < 0.05
        assert float((fast != ref).float().mean()) < 0.02
    big = triton_nearest_centroid(x * 1e5, c * 1e5, precision="fp16")  # beyond float16: fp32 inputs instead
    assert float((big != ref).float().mean()) < 0.02


def test_warm_up_is_a_no_op_without_cuda() -> None:
    from sogs_compressor.quantize.assign_triton import warm_up

    assert warm_up(torch.device("cpu")) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_warm_up_compiles_once_in_the_background() -> None:
    from sogs_compressor.quantize import assign_triton

    device = torch.device("cuda")
    thread = assign_triton.warm_up(device, dims=(24, 9))
    assert thread is not None
    x, c = _data(500, 70, 24, seed=9)
    labels = triton_nearest_centroid(x.to(device), c.to(device))  # waits for the D = 24 compile, then runs
    key = assign_triton.device_key(device)
    assert assign_triton._compiled[(key, 24)].is_set()
    thread.join()
    assert assign_triton._compiled[(key, 9)].is_set()
    again = assign_triton.warm_up(torch.device("cuda", torch.cuda.current_device()), dims=(24, 9))
    again.join()  # nothing left to compile: only the (already made) CUDA context
    ref, _ = reference_nearest_centroid(x, c)
    assert float((labels.cpu() != ref).float().mean()) < 0.02


def test_cards_older_than_ampere_use_the_torch_path(monkeypatch) -> None:
    """T4 / V100 (compute capability 7.x): Triton does not support them, so the chunked torch path runs."""
    from sogs_compressor.quantize import assign_triton

    pytest.importorskip("triton")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    capability = {"value": (7, 5)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability["value"])
    assert assign_triton.triton_available(torch.device("cuda", 0)) is False
    capability["value"] = (8, 0)
    assert assign_triton.triton_available(torch.device("cuda", 0)) is True
