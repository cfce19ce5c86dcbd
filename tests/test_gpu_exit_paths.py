"""Every exit path with a usable GPU: the documented code and one line, never an abort (issue 11).

With CUDA up (and the background warm-up still compiling), an interpreter teardown used to abort the process
(exit 134). These run only where a CUDA GPU is present (the GPU machine); tests/test_cli_exit_paths.py covers
the same paths on the CPU in CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sogs_compressor.sample import generate_scene
from sogs_compressor.write.ply import write_ply

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

REPO = Path(__file__).resolve().parents[1]


def compress(*args: object, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sogs_compressor", "compress", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout, env={**os.environ, **(env or {})})


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gpu-scenes")
    good = folder / "good.ply"
    write_ply(generate_scene(300_000, sh_degree=2, seed=1), good)
    big = folder / "big.ply"
    write_ply(generate_scene(2_000_000, sh_degree=3, seed=2), big)
    truncated = folder / "cut.ply"
    truncated.write_bytes(good.read_bytes()[:-4000])
    sog = folder / "sog"
    assert compress(good, "-o", sog, "--layout", "bundle", "--no-verify").returncode == 0
    broken = folder / "broken.sog"
    data = (sog / "good.sog").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    return {"good": good, "big": big, "truncated": truncated, "broken_sog": broken}


@pytest.mark.parametrize(("case", "code"), [("missing", 3), ("truncated", 14), ("broken_sog", 17)])
@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_bad_input_on_the_gpu(scenes, tmp_path, case, code, device) -> None:
    path = scenes.get(case, tmp_path / "missing.ply")
    proc = compress(path, "-o", tmp_path / "out", "--device", device)
    assert proc.returncode == code, proc.stderr[-3000:]
    one_error_line(proc.stderr)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_gpu_that_is_not_there(scenes, tmp_path) -> None:
    proc = compress(scenes["good"], "-o", tmp_path / "out", "--device", f"cuda:{torch.cuda.device_count() + 6}")
    assert proc.returncode == 20
    assert "CUDA device" in one_error_line(proc.stderr)


def test_out_of_gpu_memory(scenes, tmp_path) -> None:
    fraction = 256 * 2**20 / torch.cuda.get_device_properties(0).total_memory  # 256 MiB of the card
    proc = compress(scenes["big"], "-o", tmp_path / "out", env={"SOGS_GPU_MEMORY_FRACTION": f"{fraction:.6f}"})
    assert proc.returncode == 20, proc.stderr[-3000:]
    assert "out of GPU memory" in one_error_line(proc.stderr)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()] if (tmp_path / "out").exists() else True


@pytest.mark.parametrize("delay", [1.5, 5.0])
def test_sigterm_mid_compress(scenes, tmp_path, delay) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "sogs_compressor", "compress", str(scenes["big"]), "-o", str(out),
                             "--preset", "max", "--quality-check", "full"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    time.sleep(delay)
    if proc.poll() is not None:
        pytest.skip("finished before the signal")
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 5.0
    assert proc.returncode == 130, stderr[-3000:]
    one_error_line(stderr)
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


def test_job_entrypoint_with_good_and_bad_scenes(scenes, tmp_path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from s3server import job_env, opt_ml_tree, run_job

    root = opt_ml_tree(tmp_path / "ml")
    inputs = root / "processing/input/scenes"
    inputs.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        (inputs / f"good{i}.ply").write_bytes(scenes["good"].read_bytes())
    (inputs / "cut.ply").write_bytes(scenes["truncated"].read_bytes())
    (inputs / "text.ply").write_text("not a ply at all\n")
    for attempt in ("first", "cached rerun"):
        run = run_job(["--device", "cuda"], job_env(root, SOGS_DEVICE="cuda"), timeout=600)
        assert run.returncode not in (0, 1, 134), (attempt, run.returncode, run.stderr[-3000:])
        assert run.returncode in (3, 10, 14), (attempt, run.returncode)
        message = (root / "output" / "message").read_text(encoding="utf-8")
        assert "2 of 5 scene(s) failed" in message, (attempt, message)
