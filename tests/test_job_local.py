"""compress_model.py as a subprocess against a temporary /opt/ml tree (real config JSON, real codec, CPU)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from s3server import job_env, log_events, opt_ml_tree, run_job, write_ply, write_truncated_ply


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def assert_no_partial_scene(output: Path) -> None:
    """Every folder holding a SOG also holds its JSON report; no staging or temp files remain."""
    assert not (output / ".sogs-staging").exists()
    for sog in output.rglob("*.sog"):
        assert (sog.parent / "compression_report.json").is_file(), sog
    assert not [p for p in output.rglob("*") if ".tmp" in p.name or ".old-" in p.name]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One batch: two good scenes (one nested, with metadata), one truncated scene; run once, twice, forced."""
    root = opt_ml_tree(tmp_path_factory.mktemp("ml"), inputs={"scenes": "s3://bucket/scenes/"})
    scenes = root / "processing/input/scenes"
    write_ply(scenes / "a.ply", 400, seed=1)
    write_ply(scenes / "deep/er/b.ply", 500, seed=2)
    (scenes / "deep/er/metadata.json").write_text(json.dumps({"customer": "acme", "capture": 7}))
    write_truncated_ply(scenes / "broken.ply", 300)
    (scenes / "notes.txt").write_text("not a scene")
    first = run_job(["--layout", "both"], job_env(root, SOGS_PROGRESS_INTERVAL="0"))  # every progress update
    output = root / "processing/output/sog"
    first_report = read_json(output / "job_report-algo-1.json")
    mtime = (output / "a" / "a.sog").stat().st_mtime_ns
    second = run_job(["--layout", "both"], job_env(root))
    reused_mtime = (output / "a" / "a.sog").stat().st_mtime_ns
    return {"root": root, "output": output, "first": first, "second": second, "mtimes": (mtime, reused_mtime),
            "first_report": first_report}


@pytest.mark.slow
def test_good_scenes_complete_and_bad_one_is_reported(batch):
    run, output, root = batch["first"], batch["output"], batch["root"]
    assert run.returncode == 14, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stderr == ""
    message = (root / "output" / "message").read_text(encoding="utf-8")
    assert message.startswith("algo-1: 1 of 3 scene(s) failed; first: broken.ply: ") and "truncated" in message
    assert message.count("\n") == 1 and len(message.encode()) <= 1024
    for rel, name in (("a", "a"), ("deep/er/b", "b")):
        folder = output / rel
        assert (folder / f"{name}.sog").is_file() and (folder / "meta.json").is_file()
        report = read_json(folder / "compression_report.json")
        assert report["status"] == "ok" and report["scene"] == f"{rel}.ply"
        assert report["input"]["bytes"] == (root / "processing/input/scenes" / f"{rel}.ply").stat().st_size
        names = {o["name"] for o in report["outputs"]}
        assert f"{name}.sog" in names and "meta.json" in names
        for item in report["outputs"]:
            assert (folder / item["name"]).stat().st_size == item["bytes"] and len(item["sha256"]) == 64
        assert report["splats"]["input"] == report["splats"]["output"] + sum(report["splats"]["dropped"].values())
        assert report["job"] == {"name": "test-job", "host": "algo-1"}
        assert (folder / "compression_report.txt").read_text().startswith(f"scene        {rel}.ply")
    assert read_json(output / "deep/er/b/compression_report.json")["metadata"] == {"customer": "acme", "capture": 7}
    assert not (output / "broken").exists() and not (output / "notes").exists()
    assert_no_partial_scene(output)


@pytest.mark.slow
def test_job_report_and_logs(batch):
    run, output = batch["first"], batch["output"]
    report = batch["first_report"]
    assert report["exit_code"] == 14 and report["job"] == "test-job" and report["host"] == "algo-1"
    assert report["totals"]["compressed"] == 2 and report["totals"]["failed"] == 1
    assert report["failures"][0]["scene"] == "broken.ply" and report["failures"][0]["exit_code"] == 14
    assert report["config"]["instance_type"] == "ml.c6i.xlarge"
    assert (output / "job_report-algo-1.txt").is_file()
    events = log_events(run.stdout)  # every stdout line is JSON
    assert all(e.get("job") == "test-job" and e.get("host") == "algo-1" for e in events)
    names = [e["event"] for e in events]
    assert names[0] == "job_config" and names[-1] == "job_done" and names.count("scene_done") == 2
    progress = [e for e in events if e["event"] == "progress"]
    assert any(e["stage"] == "kmeans" and 0 < e["percent"] < 100 for e in progress)  # within the stage
    assert {e["scene"] for e in progress} <= {"a.ply", "deep/er/b.ply", "broken.ply"}


@pytest.mark.slow
def test_rerun_reuses_identical_outputs(batch):
    run, output = batch["second"], batch["output"]
    assert run.returncode == 14
    report = read_json(output / "job_report-algo-1.json")
    assert report["totals"]["reused"] == 2 and report["totals"]["compressed"] == 0
    assert [s["status"] for s in report["scenes"]] == ["reused", "failed", "reused"]
    assert batch["mtimes"][0] == batch["mtimes"][1]
    assert any(e["event"] == "cache_hit" for e in log_events(run.stdout))


@pytest.mark.slow
def test_force_compresses_again(batch):
    root, output = batch["root"], batch["output"]
    before = (output / "a" / "a.sog").stat().st_mtime_ns
    forced = run_job(["--force", "--layout", "bundle", "--input", str(root / "processing/input/scenes/a.ply")],
                     job_env(root))
    assert forced.returncode == 0, forced.stdout[-2000:]
    assert read_json(output / "job_report-algo-1.json")["totals"]["compressed"] == 1
    assert (output / "a" / "a.sog").stat().st_mtime_ns != before
    # the new folder replaced the old one whole: no texture files left from the earlier layout
    assert sorted(p.name for p in (output / "a").iterdir()) == [
        "a.html", "a.preview.png", "a.sog", "compression_report.json", "compression_report.txt"]
    report = read_json(output / "a" / "compression_report.json")
    assert report["quality"]["preview"] == "a.preview.png"
    assert {o["name"]: o["role"] for o in report["outputs"]}["a.html"] == "viewer"  # the viewer page
    assert report["output_bytes"] == (output / "a" / "a.sog").stat().st_size
    assert_no_partial_scene(output)


def test_legacy_sm_variables_still_work(tmp_path):
    write_truncated_ply(tmp_path / "in" / "s.ply", 300)  # no compression needed to see where things went
    env = job_env(tmp_path / "ml", SM_CHANNEL_INPUT=str(tmp_path / "in"), SM_OUTPUT_DATA_DIR=str(tmp_path / "out"),
                  SM_CURRENT_HOST="algo-3")
    run = run_job([], env)
    assert run.returncode == 14, run.stdout[-2000:]
    report = read_json(tmp_path / "out" / "job_report-algo-3.json")
    assert report["config"]["sources"] == {"inputs": "env:SM_CHANNEL_INPUT", "output": "env:SM_OUTPUT_DATA_DIR",
                                           "host": "env:SM_CURRENT_HOST"}
    assert report["failures"][0]["scene"] == "s.ply"
    assert (tmp_path / "ml" / "output" / "message").read_text().startswith("algo-3: 1 of 1 scene(s) failed")


def test_host_with_zero_files_of_a_sharded_job_exits_0(tmp_path):
    root = opt_ml_tree(tmp_path, host="algo-2", hosts=["algo-1", "algo-2"])
    run = run_job([], job_env(root))
    assert run.returncode == 0, run.stdout[-2000:]
    report = read_json(root / "processing/output/sog/job_report-algo-2.json")
    assert report["totals"]["files_processed"] == 0 and report["exit_code"] == 0
    assert "no scene files on this host" in (root / "output/message").read_text()


def test_single_host_without_scenes_is_bad_input(tmp_path):
    root = opt_ml_tree(tmp_path)
    run = run_job([], job_env(root))
    assert run.returncode == 3
    assert "no scene files" in (root / "output/message").read_text()
    missing = run_job(["--input", str(tmp_path / "nope")], job_env(root))
    assert missing.returncode == 3 and "does not exist" in (root / "output/message").read_text()


def test_requested_gpu_missing_fails_fast(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    root = opt_ml_tree(tmp_path)
    write_ply(root / "processing/input/scenes/s.ply", 200)
    start = time.monotonic()
    run = run_job([], job_env(root, SOGS_DEVICE="cuda"))
    elapsed = time.monotonic() - start
    assert run.returncode == 20
    assert "GPU" in (root / "output/message").read_text()
    assert not (root / "processing/output/sog/s").exists()
    print(f"GPU check failed the job after {elapsed:.2f} s (process start included)")


def test_unwritable_output_is_exit_40(tmp_path):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        output = blocker / "sub"  # a path below a regular file cannot be created, even by root
    else:
        output = tmp_path / "ro"
        output.mkdir(mode=0o500)
    write_ply(tmp_path / "in" / "s.ply", 200)
    run = run_job(["--input", str(tmp_path / "in"), "--output", str(output)], job_env(tmp_path / "ml"))
    assert run.returncode == 40
    assert "not writable" in (tmp_path / "ml/output/message").read_text()


def test_help_documents_exit_codes_and_rule():
    for argv in (["--help"],):
        run = run_job(argv, job_env())
        assert run.returncode == 0
        assert "130" in run.stdout and "most serious class" in run.stdout and "SOGS_OPT_ML_ROOT" in run.stdout


def test_sogs_compressor_job_subcommand_runs_the_same_job(tmp_path):
    import subprocess
    import sys

    write_truncated_ply(tmp_path / "in" / "x.ply", 300)
    run = subprocess.run([sys.executable, "-m", "sogs_compressor", "job", "--input", str(tmp_path / "in"),
                          "--output", str(tmp_path / "out"), "--host", "h1"],
                         env=job_env(tmp_path / "ml"), capture_output=True, text=True, timeout=120)
    assert run.returncode == 14, run.stdout[-2000:] + run.stderr[-2000:]
    assert read_json(tmp_path / "out" / "job_report-h1.json")["failures"][0]["exit_code"] == 14


@pytest.mark.slow
def test_changed_input_is_compressed_again_with_its_new_digest(tmp_path):
    """Same size, other bytes: the earlier report is found, the hash differs, the scene is redone; another size
    is redone without hashing first. Either way the report holds the input's own sha256 (hashed beside the codec
    when nothing earlier could match)."""
    from sogs_compressor.report.hashing import sha256_file

    root = opt_ml_tree(tmp_path, inputs={"scenes": "s3://bucket/scenes/"})
    scene = root / "processing/input/scenes/a.ply"
    report_path = root / "processing/output/sog/a/compression_report.json"
    for count, seed in ((300, 1), (300, 2), (350, 2)):
        write_ply(scene, count, seed=seed)
        run = run_job(["--layout", "bundle", "--quality-check", "off"], job_env(root))
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        report = read_json(report_path)
        assert report["status"] == "ok" and report["input"]["sha256"] == sha256_file(scene)
        assert report["input"]["bytes"] == scene.stat().st_size
        assert not any(e["event"] == "cache_hit" for e in log_events(run.stdout))


def test_target_psnr_reaches_the_scene_report(tmp_path):
    """--target-psnr through the entrypoint: the report's quality section says what the search chose."""
    root = opt_ml_tree(tmp_path, inputs={"scenes": "s3://bucket/scenes/"})
    write_ply(root / "processing/input/scenes/a.ply", 600, seed=4)
    run = run_job(["--layout", "bundle", "--target-psnr", "25"], job_env(root))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    folder = root / "processing/output/sog/a"
    report = read_json(folder / "compression_report.json")
    target = report["quality"]["target"]
    assert target["psnr_content"] == 25 and target["met"] is True
    assert report["quality"]["score"]["psnr_content"] >= 25
    assert report["settings"]["target_psnr"] == 25
    assert "target       content PSNR >= 25 dB met" in (folder / "compression_report.txt").read_text()
