"""Exit paths of ``sogs-compressor compress`` as a process: signals, early failures, $SOGS_DEVICE.

Each failure must give its documented exit code and exactly one line on stderr, and leave no output of the
unfinished scene that looks complete. On a GPU machine tests/test_gpu_exit_paths.py runs the same paths on CUDA.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sogs_compressor.sample import generate_scene
from sogs_compressor.write.ply import write_ply

REPO = Path(__file__).resolve().parents[1]


def start(*args: object, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sogs_compressor", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, **(env or {})})


def leftovers(folder: Path) -> list[str]:
    """Files in the output folder that look like (part of) a finished output, temporary files included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "room.ply"
    write_ply(generate_scene(40_000, sh_degree=1, seed=2), path)
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_encoding_exits_130_with_one_line_and_no_output(scene, tmp_path, signum) -> None:
    out = tmp_path / "out"
    proc = start("compress", scene, "-o", out, "--device", "cpu", "--iterations", "500")
    time.sleep(4.0)  # past start-up, inside the k-means (500 iterations take far longer on any CPU)
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5.0
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: interrupted by SIG"), stderr
    assert leftovers(out) == []


def test_a_stop_after_the_scene_is_written_removes_it(tmp_path, monkeypatch) -> None:
    """Written but not yet read back is not finished: when the stop lands there (deterministically here: in the
    read-back; verification and the quality check now run before the write, so a real signal rarely lands in
    that window), the .sog, the folder layout and the preview of the scene are all removed."""
    from sogs_compressor.errors import Interrupted
    from sogs_compressor.options import CompressOptions
    from sogs_compressor.pipeline import compress_splats

    def stopped(*args) -> None:
        assert (tmp_path / "room.sog").exists() and (tmp_path / "meta.json").exists()
        assert (tmp_path / "room.preview.png").exists()
        raise Interrupted("stopped by a signal before the scene was complete")

    monkeypatch.setattr("sogs_compressor.pipeline.confirm_written", stopped)
    with pytest.raises(Interrupted):
        compress_splats(generate_scene(3_000, sh_degree=1, seed=2), tmp_path, "room",
                        CompressOptions(device="cpu", layout="both", iterations=2))
    assert leftovers(tmp_path) == []


def test_bad_input_fails_before_torch_is_imported(tmp_path) -> None:
    truncated = tmp_path / "cut.ply"
    write_ply(generate_scene(500, sh_degree=0, seed=1), truncated)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    for path, code in ((tmp_path / "missing.ply", 3), (truncated, 14)):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "sogs_compressor", "compress", str(path),
                               "-o", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert proc.returncode == code, proc.stderr[-2000:]
        imports = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
        errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
        assert len(errors) == 1 and errors[0].startswith("error: "), errors
        assert not any(line.rstrip().endswith(" torch") for line in imports)
        assert leftovers(tmp_path / "out") == []


def test_bad_input_is_found_before_torch_loads_however_slow_the_read(tmp_path, monkeypatch) -> None:
    """The header check runs in the calling thread: a loaded machine that delays the background read (here: a
    read that sleeps) cannot let a missing or truncated file through to the torch import."""
    from sogs_compressor import prefetch
    from sogs_compressor.errors import InputNotFoundError, SizeMismatchError

    truncated = tmp_path / "cut.ply"
    write_ply(generate_scene(300, sh_degree=0, seed=2), truncated)
    truncated.write_bytes(truncated.read_bytes()[:-7])
    good = tmp_path / "good.ply"
    write_ply(generate_scene(300, sh_degree=0, seed=3), good)

    def slow_read(path):
        time.sleep(0.5)
        raise AssertionError("the background read is not what should report this")

    monkeypatch.setattr(prefetch, "read_one_level", slow_read)
    assert isinstance(prefetch.ScenePrefetch(tmp_path / "missing.ply").early_failure(wait_s=0), InputNotFoundError)
    assert isinstance(prefetch.ScenePrefetch(truncated).early_failure(wait_s=0), SizeMismatchError)
    assert prefetch.ScenePrefetch(good).early_failure(wait_s=0) is None


def test_compress_honours_sogs_device(scene, tmp_path) -> None:
    proc = start("compress", scene, "-o", tmp_path / "out", env={"SOGS_DEVICE": "cuda:9"})
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 20, stderr
    assert len(stderr.strip().splitlines()) == 1 and "cuda:9" in stderr
    assert leftovers(tmp_path / "out") == []


def test_bad_gpu_memory_fraction_is_refused_on_cuda_only(scene, tmp_path) -> None:
    proc = start("compress", scene, "-o", tmp_path / "out", "--device", "cpu", "--no-verify",
                 "--preset", "fast", env={"SOGS_GPU_MEMORY_FRACTION": "2"})
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr  # a CPU run never touches the GPU setting


def test_a_reader_that_closes_the_pipe_ends_info_quietly_with_141(tmp_path) -> None:
    """``info --json | head``: the reader goes away before we write; that is no bug of ours (one "internal error"
    line was printed before), so the process ends at once, silently, with the shell's code for a closed pipe."""
    ply = tmp_path / "small.ply"
    write_ply(generate_scene(500, sh_degree=0, seed=1), ply)
    proc = subprocess.Popen([sys.executable, "-m", "sogs_compressor", "info", "--json", str(ply)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()  # before the child has imported anything, so its first write finds no reader
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, stderr
    assert stderr == ""


def test_a_broken_pipe_that_is_not_standard_output_stays_an_internal_error(monkeypatch, capsys) -> None:
    """A BrokenPipeError from elsewhere (a socket, a child process) is a failure to report, not a quiet exit."""
    from sogs_compressor import cli

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "_cmd_info", broken)
    assert cli.main(["info", "x.ply"]) == 1
    assert capsys.readouterr().err.startswith("error: internal error: BrokenPipeError")
