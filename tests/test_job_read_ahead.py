"""The job reads the next scene while the current one compresses (job/read_ahead.py): same outputs, reads moved
off the scenes' critical path, only when memory allows, never a stale or wrong file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from s3server import job_env, log_events, opt_ml_tree, run_job, write_ply

from sogs_compressor.host_memory import available_memory_bytes
from sogs_compressor.job import read_ahead
from sogs_compressor.job.read_ahead import ReadAhead, fits


def test_enabled_unless_turned_off():
    assert read_ahead.enabled({}) and read_ahead.enabled({"SOGS_READ_AHEAD": "1"})
    for off in ("0", "off", "FALSE", " no "):
        assert not read_ahead.enabled({"SOGS_READ_AHEAD": off})


def test_available_memory_is_meminfo_capped_by_the_cgroup(tmp_path: Path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert available_memory_bytes(meminfo, cgroup) == 20_000_000 * 1024  # no cgroup files: the kernel's figure
    (cgroup / "memory.max").write_text("max\n")
    (cgroup / "memory.current").write_text("5000\n")
    assert available_memory_bytes(meminfo, cgroup) == 20_000_000 * 1024  # no limit
    (cgroup / "memory.max").write_text(f"{8 << 30}\n")
    (cgroup / "memory.current").write_text(f"{3 << 30}\n")
    assert available_memory_bytes(meminfo, cgroup) == 5 << 30  # the container's headroom is smaller
    assert available_memory_bytes(tmp_path / "none", tmp_path / "none") is None


def test_fits_needs_room_for_both_scenes_and_the_reserve():
    gib = 1 << 30
    assert fits(gib, gib, 3 * gib + gib + read_ahead.RESERVE_BYTES)
    assert not fits(gib, gib, 3 * gib + gib + read_ahead.RESERVE_BYTES - 1)
    assert not fits(0, 0, None)  # memory unknown: no read-ahead


def test_take_gives_the_read_of_that_file_only_while_it_is_unchanged(tmp_path: Path):
    a, b = tmp_path / "a.ply", tmp_path / "b.ply"
    write_ply(a, 300, seed=1)
    write_ply(b, 200, seed=2)
    plenty = ReadAhead(memory=lambda: 1 << 40)
    assert plenty.start(a, 0) and not plenty.start(b, 0)  # one pending read at a time
    pending = plenty.take(a)
    assert pending is not None and pending.result()[0].splats.count == 300
    assert plenty.take(a) is None  # taken once
    assert plenty.start(a, 0) and plenty.take(b) is None and plenty.take(a) is None  # another scene's turn drops it
    assert plenty.start(a, 0)
    time.sleep(0.01)
    write_ply(a, 250, seed=3)  # the file changed after its read began
    os.utime(a, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert plenty.take(a) is None
    short = ReadAhead(memory=lambda: 1 << 20)
    assert not short.start(a, 0) and short.take(a) is None
    assert not plenty.start(tmp_path / "missing.ply", 0)


@pytest.mark.slow
def test_job_reads_ahead_with_the_same_outputs(tmp_path: Path):
    """Three scenes in one job: the first was read while torch loaded, the second and third while the one before
    compressed (their reports time the read in the background), and every output is byte-identical to a job
    without read-ahead."""
    sha = {}
    for mode in ("on", "0"):
        root = opt_ml_tree(tmp_path / mode)
        scenes = root / "processing/input/scenes"
        for index, name in enumerate(("a", "b", "c")):
            write_ply(scenes / f"{name}.ply", 3000 + 500 * index, seed=index)
        run = run_job(["--layout", "bundle"], job_env(root, SOGS_READ_AHEAD=mode))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        reports = {name: json.loads((root / "processing/output/sog" / name / "compression_report.json").read_text())
                   for name in ("a", "b", "c")}
        ahead = {name: "read_background" in report["timings_s"] for name, report in reports.items()}
        assert ahead == dict.fromkeys("abc", mode == "on")
        sha[mode] = {name: {o["name"]: o["sha256"] for o in report["outputs"] if o["name"].endswith(".sog")}
                     for name, report in reports.items()}
    assert sha["on"] == sha["0"] and all(sha["on"].values())


def test_job_reads_its_first_scene_while_torch_loads(tmp_path: Path):
    """A one-scene job with local inputs (SageMaker's File mode) starts reading the scene before it resolves the
    device (which imports torch, seconds on a GPU host), and the scene's report times that read as done in the
    background; with S3 inputs the device is resolved first (a missing GPU fails before any download)."""
    root = opt_ml_tree(tmp_path)
    write_ply(root / "processing/input/scenes/only.ply", 2000, seed=4)
    run = run_job(["--layout", "bundle"], job_env(root, LOG_LEVEL="DEBUG"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    events = [event["event"] for event in log_events(run.stdout)]
    assert events.index("read_ahead") < events.index("device") < events.index("scene_start")
    report = json.loads((root / "processing/output/sog/only/compression_report.json").read_text())
    assert "read_background" in report["timings_s"]
