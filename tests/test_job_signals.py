"""SIGTERM/SIGINT mid-batch: the scene in progress is abandoned, reports and message written, exit 130 fast."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from faultproxy import FaultPlan, FaultProxy, Rule
from s3server import ENTRYPOINT, REPO, job_env, opt_ml_tree, ply_bytes, s3_endpoint, write_ply  # noqa: F401

EVERY_PROGRESS_EVENT = {"SOGS_PROGRESS_INTERVAL": "0"}
"""The tests wait for a scene's first progress event, which by default comes only 5 s into a stage."""


def start_job(root: Path, extra: list[str] | None = None) -> tuple[subprocess.Popen, queue.Queue]:
    return start([sys.executable, str(ENTRYPOINT), *(extra or [])], job_env(root, **EVERY_PROGRESS_EVENT))


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


# ---- issue 12 #18, #19: every phase ends within 5 s of SIGTERM, under CPU load; the report reaches S3 ----------
@pytest.fixture()
def cpu_load():
    """One busy-looping process per core, competing with the job (ended by pid at teardown)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    yield
    for hog in hogs:
        hog.kill()
        hog.wait()


def start(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, queue.Queue]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=REPO)
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in process.stdout:
            lines.put(json.loads(line))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return process, lines


def stop_and_time(process: subprocess.Popen) -> tuple[int, float]:
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    code = process.wait(timeout=60)
    elapsed = time.monotonic() - sent
    print(f"exit {code} {elapsed:.2f} s after SIGTERM")  # shown with -s
    return code, elapsed


def s3_keys(client, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


PHASE_RULES = {  # the request that holds the job in each phase, for 60 s
    "listing": ("GET", "^/{bucket}$"),
    "download": ("GET", "^/{bucket}/in/s0\\.ply$"),
    "upload": ("PUT", "^/{bucket}/out/s0/"),
}


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["listing", "download", "encode", "upload"])
def test_sigterm_ends_every_phase_within_5_s_under_load(phase, s3_endpoint, cpu_load, tmp_path: Path):  # noqa: F811
    client = s3_endpoint.client()
    bucket = f"stop{os.urandom(3).hex()}"
    client.create_bucket(Bucket=bucket)
    for i in range(2):
        client.put_object(Bucket=bucket, Key=f"in/s{i}.ply", Body=ply_bytes(2000, seed=i))
    rules = []
    if phase in PHASE_RULES:
        method, path = PHASE_RULES[phase]
        rules.append(Rule(path.format(bucket=bucket), "delay", method=method, seconds=60.0))
    with FaultProxy(s3_endpoint.url, FaultPlan(rules=rules)) as proxy:
        env = job_env(tmp_path / "ml", **{**s3_endpoint.env(), "AWS_ENDPOINT_URL_S3": proxy.url},
                      SOGS_HOST="algo-1", SOGS_WORK_DIR=str(tmp_path / "work"), **EVERY_PROGRESS_EVENT)
        process, lines = start([sys.executable, str(ENTRYPOINT), "--input", f"s3://{bucket}/in/",
                                "--output", f"s3://{bucket}/out/", "--quality-check", "off"], env)
        if rules:
            assert rules[0].hit.wait(120), f"the job never reached the {phase} phase"
        else:
            wait_for(lines, lambda e: e["event"] == "progress" and e["scene"] == "s0.ply", timeout=120)
        code, elapsed = stop_and_time(process)
    assert code == 130, process.stderr.read()[-2000:]
    assert elapsed < 5.0, f"{phase}: took {elapsed:.1f} s to exit after SIGTERM"
    message = (tmp_path / "ml" / "output" / "message").read_text(encoding="utf-8")
    assert message.startswith("algo-1: interrupted by SIGTERM")
    report = json.loads(client.get_object(Bucket=bucket, Key="out/job_report-algo-1.json")["Body"].read())
    assert report["exit_code"] == 130 and report["totals"]["files_processed"] == 0
    assert not [k for k in s3_keys(client, bucket) if k.endswith("compression_report.json")]


@pytest.mark.slow
def test_watchdog_uploads_the_job_report_to_an_s3_output(s3_endpoint, tmp_path: Path):  # noqa: F811
    """Issue 12 #18: when the watchdog ended the job, the report stayed in the deleted temp folder."""
    client = s3_endpoint.client()
    bucket = f"dog{os.urandom(3).hex()}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="in/s0.ply", Body=ply_bytes(300))
    env = job_env(tmp_path / "ml", **s3_endpoint.env(), SOGS_HOST="algo-1", SOGS_WORK_DIR=str(tmp_path / "work"),
                  **EVERY_PROGRESS_EVENT)
    process, lines = start([sys.executable, str(REPO / "tests" / "jobdriver.py"), "jobfakes:stuck_compress",
                            "--input", f"s3://{bucket}/in/", "--output", f"s3://{bucket}/out/"], env)
    wait_for(lines, lambda e: e["event"] == "progress" and e.get("stage") == "stuck")
    code, elapsed = stop_and_time(process)
    assert code == 130 and elapsed < 5.0, (code, elapsed, process.stderr.read()[-2000:])
    report = json.loads(client.get_object(Bucket=bucket, Key="out/job_report-algo-1.json")["Body"].read())
    assert report["exit_code"] == 130 and [s["status"] for s in report["scenes"]] == ["interrupted"]
    assert "out/job_report-algo-1.txt" in s3_keys(client, bucket)
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").rglob("*.json"))


@pytest.mark.slow
def test_exit_does_not_wait_for_library_teardown(tmp_path: Path):
    """Issue 12 #19: after the reports were written, interpreter and torch teardown took 8-16 s more."""
    write_ply(tmp_path / "in" / "s0.ply", 300)
    env = job_env(tmp_path / "ml", SOGS_HOST="algo-1", **EVERY_PROGRESS_EVENT)
    process, lines = start([sys.executable, str(REPO / "tests" / "jobdriver.py"), "jobfakes:compress_with_slow_teardown",
                            "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")], env)
    wait_for(lines, lambda e: e["event"] == "progress" and e.get("stage") == "busy")
    code, elapsed = stop_and_time(process)
    assert code == 130 and elapsed < 5.0, (code, elapsed)
    assert not (tmp_path / "in" / "teardown-ran").exists(), "the job waited for library teardown"
    report = json.loads((tmp_path / "out" / "job_report-algo-1.json").read_text())
    assert [s["status"] for s in report["scenes"]] == ["interrupted"]
    assert (tmp_path / "ml" / "output" / "message").read_text().startswith("algo-1: interrupted by SIGTERM")


@pytest.mark.slow
def test_a_report_upload_that_hangs_after_sigterm_is_cut_at_the_deadline(s3_endpoint, tmp_path: Path):  # noqa: F811
    """Issue 12 #19, the main thread holding the finalize lock: its report upload hangs as well; the process
    still ends within 5 s, with the message written."""
    client = s3_endpoint.client()
    bucket = f"hang{os.urandom(3).hex()}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="in/s0.ply", Body=ply_bytes(300))
    every_put = Rule(f"^/{bucket}/out/", "delay", method="PUT", seconds=60.0)
    with FaultProxy(s3_endpoint.url, FaultPlan(rules=[every_put])) as proxy:
        env = job_env(tmp_path / "ml", **{**s3_endpoint.env(), "AWS_ENDPOINT_URL_S3": proxy.url},
                      SOGS_HOST="algo-1", SOGS_WORK_DIR=str(tmp_path / "work"))
        process, _ = start([sys.executable, str(ENTRYPOINT), "--input", f"s3://{bucket}/in/",
                            "--output", f"s3://{bucket}/out/", "--quality-check", "off"], env)
        assert every_put.hit.wait(120)
        code, elapsed = stop_and_time(process)
    assert code == 130 and elapsed < 5.0, (code, elapsed)
    assert (tmp_path / "ml" / "output" / "message").read_text().startswith("algo-1: interrupted by SIGTERM")
    assert every_put.count >= 2  # the report's upload was tried too
