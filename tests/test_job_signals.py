"""SIGTERM/SIGINT mid-batch: the scene in progress is abandoned, reports and message written, exit 130 fast."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from s3server import ENTRYPOINT, REPO, job_env, opt_ml_tree, write_ply


def start_job(root: Path, extra: list[str] | None = None) -> tuple[subprocess.Popen, queue.Queue]:
    process = subprocess.Popen([sys.executable, str(ENTRYPOINT), *(extra or [])], env=job_env(root),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(json.loads(line))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return process, lines


def wait_for(lines: queue.Queue, predicate, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        if event is None:
            break
        if predicate(event):
            return event
    pytest.fail("the expected log event never came")


@pytest.mark.slow
def test_sigterm_mid_scene_abandons_it_and_exits_130(tmp_path: Path):
    root = opt_ml_tree(tmp_path)
    for i in range(3):
        write_ply(root / f"processing/input/scenes/s{i}.ply", 2000, seed=i)
    process, lines = start_job(root)
    wait_for(lines, lambda e: e["event"] == "scene_start" and e["scene"] == "s1.ply", timeout=120)
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    code = process.wait(timeout=30)
    elapsed = time.monotonic() - sent
    assert code == 130, process.stderr.read()
    assert elapsed < 8.0, f"took {elapsed:.1f} s to stop"
    output = root / "processing/output/sog"
    report = json.loads((output / "job_report-algo-1.json").read_text())
    assert [s["status"] for s in report["scenes"]] == ["ok", "interrupted", "not_started"]
    assert report["exit_code"] == 130 and report["totals"]["files_processed"] == 1
    assert (output / "s0" / "compression_report.json").is_file()
    assert not (output / "s1").exists() and not (output / "s2").exists()
    assert not (output / ".sogs-staging").exists()
    message = (root / "output/message").read_text(encoding="utf-8")
    assert message.startswith("algo-1: interrupted by SIGTERM: 1 of 3 scene(s) done, s1.ply abandoned")


def test_sigint_during_first_scene(tmp_path: Path):
    root = opt_ml_tree(tmp_path)
    write_ply(root / "processing/input/scenes/only.ply", 2000)
    process, lines = start_job(root)
    wait_for(lines, lambda e: e["event"] == "progress" and e["scene"] == "only.ply")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130
    report = json.loads((root / "processing/output/sog/job_report-algo-1.json").read_text())
    assert [s["status"] for s in report["scenes"]] == ["interrupted"]
    assert not (root / "processing/output/sog/only").exists()
    assert "interrupted by SIGINT" in (root / "output/message").read_text()


WATCHDOG_SCRIPT = """
import sys, time
from pathlib import Path
from sogs_compressor.job.signals import StopFlag
stop = StopFlag(grace_s=1.0).install()
stop.on_timeout(lambda: Path(sys.argv[1]).write_text("finalized"))
print("ready", flush=True)
time.sleep(60)  # a stage that never reaches a stop check
"""


def test_watchdog_finalizes_and_exits_when_a_stage_does_not_return(tmp_path: Path):
    marker = tmp_path / "marker"
    process = subprocess.Popen([sys.executable, "-c", WATCHDOG_SCRIPT, str(marker)], stdout=subprocess.PIPE,
                               text=True, cwd=REPO)
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    assert process.wait(timeout=20) == 130
    assert time.monotonic() - sent < 5.0
    assert marker.read_text() == "finalized"
