"""The CLI as a user meets it: real subprocesses, real files."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from sogs_compressor.read.sog import read_sog
from sogs_compressor.sample import generate_scene
from sogs_compressor.write.ply import write_ply


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "sogs_compressor", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def scene_ply(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "garden.ply"
    write_ply(generate_scene(2000, sh_degree=1, seed=9), path)
    return path


def test_compress_json_result(scene_ply, tmp_path):
    proc = cli("compress", scene_ply, "-o", tmp_path, "--json", "--preset", "fast", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["counts"]["input"] == result["counts"]["output"] == 2000
    assert result["sh_degree_in"] == result["sh_degree_out"] == 1
    assert result["device"] == "cpu" and result["input_format"] == "ply"
    assert {"read", "order", "quantize", "kmeans", "write", "verify", "total"} <= set(result["timings"])
    assert result["errors"]["position_rel_max"] < 1e-3
    assert (tmp_path / "garden.sog").exists() and (tmp_path / "meta.json").exists()
    assert result["output_bytes"] == (tmp_path / "garden.sog").stat().st_size
    assert read_sog(tmp_path / "garden.sog").splats.count == 2000


def test_compress_human_summary_and_sh_cap(scene_ply, tmp_path):
    proc = cli("compress", scene_ply, "-o", tmp_path, "--layout", "bundle", "--sh-bands", "0", "--preset", "fast")
    assert proc.returncode == 0, proc.stderr
    assert "ratio" in proc.stdout and "SH degree 1 -> 0" in proc.stdout
    assert not (tmp_path / "meta.json").exists()
    assert read_sog(tmp_path / "garden.sog").splats.sh_degree == 0


def test_decompress_and_info(scene_ply, tmp_path):
    assert cli("compress", scene_ply, "-o", tmp_path, "--layout", "bundle", "--preset", "fast", "-q").returncode == 0
    proc = cli("decompress", tmp_path / "garden.sog", "-o", tmp_path / "back.ply")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(cli("info", tmp_path / "back.ply", "--json").stdout)
    assert info["count"] == 2000 and info["sh_degree"] == 1
    info = json.loads(cli("info", tmp_path / "garden.sog", "--json").stdout)
    assert info["format"] == "sog" and info["count"] == 2000


def test_cuda_without_gpu_fails_fast(scene_ply, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = cli("compress", scene_ply, "-o", tmp_path, "--device", "cuda")
    assert proc.returncode == 20
    assert "no usable CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())


def test_bad_input_exit_codes(tmp_path):
    missing = cli("compress", tmp_path / "nope.ply", "-o", tmp_path / "out")
    assert missing.returncode == 3 and "Traceback" not in missing.stderr
    junk = tmp_path / "junk.ply"
    junk.write_bytes(b"hello world, not a ply")
    proc = cli("compress", junk, "-o", tmp_path / "out")
    assert proc.returncode == 10 and proc.stderr.count("\n") == 1
    assert not (tmp_path / "out" / "junk.sog").exists()


def test_invalid_error_policy(tmp_path):
    splats = generate_scene(100, sh_degree=0, seed=2)
    splats.positions[5, 1] = float("nan")
    path = tmp_path / "nan.ply"
    write_ply(splats, path)
    proc = cli("compress", path, "-o", tmp_path / "out", "--invalid", "error")
    assert proc.returncode == 16, proc.stderr
    proc = cli("compress", path, "-o", tmp_path / "out", "--json", "--preset", "fast")
    assert proc.returncode == 0
    result = json.loads(proc.stdout)
    assert result["counts"]["dropped"]["non_finite_position"] == 1 and result["counts"]["output"] == 99


def test_help_lists_exit_codes():
    proc = cli("compress", "--help")
    assert proc.returncode == 0 and "exit codes" in proc.stdout and "130" in proc.stdout


def test_every_help_page_prints():
    """argparse formats help text with %: a bare % in any command's help crashed ``--help`` itself."""
    proc = cli("--help")
    assert proc.returncode == 0, proc.stderr
    listing = proc.stdout.split("COMMAND\n", 1)[1].split("\n\n", 1)[0]
    commands = re.findall(r"^ {4}([a-z-]+)", listing, re.MULTILINE)
    assert "compress" in commands and "decimate" in commands
    for command in commands:
        page = cli(command, "--help")
        assert page.returncode == 0 and "usage:" in page.stdout, (command, page.stderr)


def test_target_psnr_flag(scene_ply, tmp_path):
    proc = cli("compress", scene_ply, "-o", tmp_path, "--preset", "fast", "--device", "cpu", "--layout", "bundle",
               "--target-psnr", "30")
    assert proc.returncode == 0, proc.stderr
    assert "target: content PSNR >= 30 dB met" in proc.stdout
    refused = cli("compress", scene_ply, "-o", tmp_path / "x", "--target-psnr", "30", "--no-verify")
    assert refused.returncode == 2 and "--target-psnr" in refused.stderr and "Traceback" not in refused.stderr
