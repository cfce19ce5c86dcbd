"""The job and S3Manager behind a fault-injecting proxy (tests/faultproxy.py) in front of the moto S3 server.

The invariant: every scene is either complete (its marker ``compression_report.json`` is there, beside the text
report and every output, byte-identical to a fault-free run) or reported failed with no marker; never a false
completion. A few seeded rounds at 10% faults run in CI; more with

    SOGS_FAULT_ROUNDS=50 SOGS_FAULT_RATE=0.2 SOGS_FAULT_LONG_DELAYS=1 pytest tests/test_job_s3_faults.py

(``SOGS_FAULT_LONG_DELAYS=1`` makes injected delays 5-20 s instead of 0.5-2 s; ``SOGS_FAULT_SEED`` moves the
seeds; ``SOGS_FAULT_MAX_ATTEMPTS=2`` lets botocore give up early, so that scenes also fail;
``SOGS_FAULT_WORKERS=2`` runs the job's worker processes).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from faultproxy import FaultPlan, FaultProxy
from faultproxy import Rule as FaultRule
from s3server import job_env, ply_bytes, run_job, s3_endpoint  # noqa: F401

from sogs_compressor.errors import StorageError

MiB = 1024 * 1024
ROUNDS = int(os.environ.get("SOGS_FAULT_ROUNDS", "3"))
RATE = float(os.environ.get("SOGS_FAULT_RATE", "0.1"))
SEED = int(os.environ.get("SOGS_FAULT_SEED", "0"))
DELAYS = (5.0, 20.0) if os.environ.get("SOGS_FAULT_LONG_DELAYS") == "1" else (0.5, 2.0)
ATTEMPTS = os.environ.get("SOGS_FAULT_MAX_ATTEMPTS")  # e.g. 2: retries give up, scenes fail (the other branch)
WORKERS = os.environ.get("SOGS_FAULT_WORKERS")  # e.g. 2: the multi-worker path
SCENES = {"a.ply": ply_bytes(300, seed=1), "deep/b.ply": ply_bytes(400, seed=2), "c.sog.ply": ply_bytes(250, seed=3)}
MARKER, TEXT = "compression_report.json", "compression_report.txt"
CODEC = ["--layout", "both", "--quality-check", "off"]
DONE = ("ok", "reused")


def objects(client, bucket: str, prefix: str) -> dict[str, bytes]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {k[len(prefix):]: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def scene_files(stored: dict[str, bytes], folder: str) -> dict[str, bytes]:
    """The files directly in one scene's output folder."""
    return {k[len(folder) + 1:]: v for k, v in stored.items()
            if k.startswith(folder + "/") and "/" not in k[len(folder) + 1:]}


def outputs_without_reports(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items() if name not in (MARKER, TEXT)}


@pytest.fixture(scope="module")
def bucket(s3_endpoint):  # noqa: F811
    client = s3_endpoint.client()
    name = "job-faults"  # fixed: the fault plan draws from the request paths, so a fixed name fixes the faults
    client.create_bucket(Bucket=name)
    for rel, body in SCENES.items():
        client.put_object(Bucket=name, Key=f"in/{rel}", Body=body)
    client.put_object(Bucket=name, Key="in/deep/b.metadata.json", Body=b'{"tag": "b"}')
    return client, name


def run_through(proxy: FaultProxy, tmp: Path, s3_endpoint, bucket_name: str, out: str):  # noqa: F811
    env = job_env(tmp, **{**s3_endpoint.env(), "AWS_ENDPOINT_URL_S3": proxy.url}, SOGS_WORK_DIR=str(tmp / "work"),
                  **({"AWS_MAX_ATTEMPTS": ATTEMPTS} if ATTEMPTS and proxy.plan.rate else {}))
    workers = ["--workers", WORKERS] if WORKERS else []
    return run_job(["--input", f"s3://{bucket_name}/in/", "--output", f"s3://{bucket_name}/{out}/", *CODEC, *workers],
                   env, timeout=600)


@pytest.fixture(scope="module")
def baseline(bucket, s3_endpoint, tmp_path_factory):  # noqa: F811
    client, name = bucket
    with FaultProxy(s3_endpoint.url) as proxy:
        run = run_through(proxy, tmp_path_factory.mktemp("base"), s3_endpoint, name, "base")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stored = objects(client, name, "base/")
    return {folder: outputs_without_reports(scene_files(stored, folder)) for folder in ("a", "deep/b", "c.sog")}


def check_invariant(client, name: str, prefix: str, baseline: dict, run) -> dict[str, str]:
    """Every scene complete and identical to the baseline, or failed without a marker; returns scene -> state."""
    assert run.returncode in (0, 30, 40), f"exit {run.returncode}: {run.stdout[-3000:]}{run.stderr[-2000:]}"
    stored = objects(client, name, prefix)
    report = json.loads(stored["job_report-local.json"]) if "job_report-local.json" in stored else None
    statuses = {s["output"]: s["status"] for s in report["scenes"]} if report else {}
    if report is not None:
        assert report["exit_code"] == run.returncode
    states = {}
    for folder, expected in baseline.items():
        files = scene_files(stored, folder)
        if MARKER in files:
            assert TEXT in files, f"{folder}: marker without the text report"
            assert outputs_without_reports(files) == expected, f"{folder}: marker beside files that differ"
            marker = json.loads(files[MARKER])
            assert {o["name"]: o["sha256"] for o in marker["outputs"]} == expected
            states[folder] = "complete"
        else:
            assert statuses.get(folder) not in DONE, f"{folder}: reported done without a marker (false completion)"
            # failed, or the whole job failed before it had scenes (e.g. the listing gave up)
            assert report is None or statuses.get(folder) == "failed" or not statuses and run.returncode, statuses
            states[folder] = "failed"
    if report is not None:
        for folder, status in statuses.items():
            if status in DONE:
                assert states[folder] == "complete"
    assert (run.returncode == 0) == (report is not None and all(s in DONE for s in statuses.values())
                                     and len(statuses) == len(baseline))
    assert not client.list_multipart_uploads(Bucket=name, Prefix=prefix).get("Uploads"), "multipart left open"
    return states


@pytest.mark.slow
def test_job_under_injected_s3_faults_never_marks_an_incomplete_scene(bucket, baseline, s3_endpoint,  # noqa: F811
                                                                      tmp_path):
    client, name = bucket
    summary = []
    for round_index in range(ROUNDS):
        seed = SEED + round_index
        plan = FaultPlan(rate=RATE, seed=seed, delay=DELAYS)
        prefix = f"r{seed}/"
        with FaultProxy(s3_endpoint.url, plan) as proxy:
            run = run_through(proxy, tmp_path / f"r{seed}", s3_endpoint, name, prefix.rstrip("/"))
        states = check_invariant(client, name, prefix, baseline, run)
        summary.append((seed, run.returncode, sum(proxy.faults.values()), proxy.requests, states))
        if round_index == 0:  # a rerun without faults finishes what is missing and reuses what is complete
            with FaultProxy(s3_endpoint.url) as clean:
                again = run_through(clean, tmp_path / f"again{seed}", s3_endpoint, name, prefix.rstrip("/"))
            assert check_invariant(client, name, prefix, baseline, again) == dict.fromkeys(baseline, "complete")
    print("\n".join(f"seed {s}: exit {c}, {f} faults in {r} requests, {st}" for s, c, f, r, st in summary))
    assert sum(f for _, _, f, _, _ in summary) > 0  # faults were really injected


@pytest.mark.slow
def test_multipart_transfers_under_faults_complete_or_fail_cleanly(s3_endpoint, tmp_path, monkeypatch):  # noqa: F811
    """s3transfer under faults: an upload is complete or absent (a failed multipart upload is aborted), and a
    download is the object's exact bytes or an error."""
    from sogs_compressor.fetch.s3 import S3Manager
    from sogs_compressor.fetch.uri import S3Uri

    client = s3_endpoint.client()
    name = "mpu-faults"  # fixed: the fault plan draws from the request paths, so a fixed name fixes the faults
    client.create_bucket(Bucket=name)
    payload = os.urandom(11 * MiB + 7)
    (tmp_path / "big.bin").write_bytes(payload)
    for key, value in {**s3_endpoint.env(), "SOGS_S3_MULTIPART_THRESHOLD": str(5 * MiB)}.items():
        monkeypatch.setenv(key, value)
    outcomes, faults = [], 0
    for seed in range(max(3, ROUNDS)):
        with FaultProxy(s3_endpoint.url, FaultPlan(rate=max(RATE, 0.15), seed=100 + seed, delay=(0.1, 0.5))) as proxy:
            monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
            monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")  # fewer retries: some transfers do fail
            manager = S3Manager()
            uri = S3Uri(name, f"k{seed}")
            try:
                manager.upload_file(tmp_path / "big.bin", uri)
                uploaded = True
            except StorageError:
                uploaded = False
            stored = client.list_objects_v2(Bucket=name, Prefix=uri.key).get("KeyCount", 0)
            assert stored or not uploaded
            if stored:  # complete, even when the answer to the completing request was lost: never partial
                assert client.get_object(Bucket=name, Key=uri.key)["Body"].read() == payload
            if uploaded:
                target = tmp_path / f"down{seed}" / "big.bin"
                try:
                    manager.download_file(uri, target, len(payload))
                    assert target.read_bytes() == payload
                    outcomes.append("ok")
                except StorageError:
                    assert not target.exists()
                    outcomes.append("download failed")
            else:
                outcomes.append("upload failed")
            manager.close()
            faults += sum(proxy.faults.values())
    assert faults > 0
    assert not client.list_multipart_uploads(Bucket=name).get("Uploads"), "a failed multipart upload was left open"
    print(outcomes)


def test_a_connection_dropped_on_every_try_is_an_s3_error_not_a_crash(s3_endpoint, monkeypatch):  # noqa: F811
    """Found by the proxy: a HEAD whose connection was always reset raised AttributeError (exit 1, 'internal')."""
    from sogs_compressor.fetch.s3 import S3Manager
    from sogs_compressor.fetch.uri import S3Uri

    client = s3_endpoint.client()
    name = f"drop{os.urandom(3).hex()}"
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="r.json", Body=b"{}")
    rules = [FaultRule(f"^/{name}(/|$)", "reset")]
    with FaultProxy(s3_endpoint.url, FaultPlan(rules=rules)) as proxy:
        for key, value in {**s3_endpoint.env(), "AWS_ENDPOINT_URL_S3": proxy.url, "AWS_MAX_ATTEMPTS": "2"}.items():
            monkeypatch.setenv(key, value)
        manager = S3Manager()
        for call in (lambda: manager.head(S3Uri(name, "r.json")), lambda: manager.read_small(S3Uri(name, "r.json")),
                     lambda: manager.list_objects(S3Uri(name, "")), lambda: manager.delete(S3Uri(name, "r.json"))):
            with pytest.raises(StorageError, match="failed for s3://"):
                call()


def test_a_multipart_upload_whose_creation_answer_was_lost_is_not_left_open(s3_endpoint, tmp_path,  # noqa: F811
                                                                             monkeypatch):
    """Found by the proxy: S3 applied CreateMultipartUpload, the answer was lost, the retry started a second
    upload; the first stayed open (and billed) with an id s3transfer never saw."""
    from sogs_compressor.fetch.s3 import S3Manager
    from sogs_compressor.fetch.uri import S3Uri

    client = s3_endpoint.client()
    name = f"orphan{os.urandom(3).hex()}"
    client.create_bucket(Bucket=name)
    payload = os.urandom(6 * MiB)
    (tmp_path / "big.bin").write_bytes(payload)
    lost_create = FaultRule(f"^/{name}/big$", "reset_after", method="POST", times=1)  # the first POST: ?uploads
    with FaultProxy(s3_endpoint.url, FaultPlan(rules=[lost_create])) as proxy:
        for key, value in {**s3_endpoint.env(), "AWS_ENDPOINT_URL_S3": proxy.url,
                           "SOGS_S3_MULTIPART_THRESHOLD": str(5 * MiB)}.items():
            monkeypatch.setenv(key, value)
        manager = S3Manager()
        manager.upload_file(tmp_path / "big.bin", S3Uri(name, "big"))
        manager.close()
        assert [m for m, path, fault in proxy.log if fault] == ["POST"] and "uploads" in proxy.log[0][1]
    assert client.get_object(Bucket=name, Key="big")["Body"].read() == payload
    assert not client.list_multipart_uploads(Bucket=name).get("Uploads")
