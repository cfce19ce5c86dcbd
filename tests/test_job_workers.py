"""Several worker processes (the multi-GPU path) exercised on CPU with --workers 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from s3server import job_env, log_events, run_job, write_ply, write_truncated_ply


@pytest.mark.slow
def test_two_workers_share_the_scenes_and_isolate_failures(tmp_path: Path):
    for i in range(2):
        write_ply(tmp_path / "in" / f"s{i}.ply", 300, seed=i)
    write_truncated_ply(tmp_path / "in" / "bad.ply", 300)
    run = run_job(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--workers", "2"],
                  job_env(tmp_path / "ml"))
    assert run.returncode == 14, run.stdout[-3000:] + run.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "job_report-local.json").read_text())
    assert [s["status"] for s in report["scenes"]] == ["failed", "ok", "ok"]  # input order kept
    for i in range(2):
        assert (tmp_path / "out" / f"s{i}" / "compression_report.json").is_file()
    events = log_events(run.stdout)
    workers = {e.get("worker") for e in events if e["event"] == "scene_done"}
    assert workers <= {0, 1} and workers
    assert any(e["event"] == "workers" and e["devices"] == ["cpu", "cpu"] for e in events)
    assert all(e.get("job") == "local" for e in events)
