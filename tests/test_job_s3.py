"""The job with s3:// input and output against a real S3 HTTP endpoint (moto server on 127.0.0.1).

The subprocess under test knows the endpoint only through AWS_ENDPOINT_URL_S3, as it would know AWS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from s3server import job_env, log_events, ply_bytes, run_job, s3_endpoint  # noqa: F401


def keys_under(client, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def get_json(client, bucket: str, key: str) -> dict:
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture(scope="module")
def s3_batch(s3_endpoint, tmp_path_factory):  # noqa: F811
    """Scenes under s3://B/scenes/ (nested, a corrupt one, a malicious key, a folder marker) -> s3://B/out/."""
    client = s3_endpoint.client()
    bucket = f"job{os.urandom(3).hex()}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="scenes/nested/b.ply", Body=ply_bytes(300, seed=2))
    client.put_object(Bucket=bucket, Key="scenes/nested/b.metadata.json", Body=b'{"tag": "b"}')
    client.put_object(Bucket=bucket, Key="scenes/nested/", Body=b"")
    client.put_object(Bucket=bucket, Key="scenes/bad.ply", Body=ply_bytes(300)[:2000])
    client.put_object(Bucket=bucket, Key="scenes/../../escape.ply", Body=ply_bytes(100))
    client.put_object(Bucket=bucket, Key="scenes-old/old.ply", Body=ply_bytes(100))
    tmp = tmp_path_factory.mktemp("s3job")
    env = job_env(tmp / "ml", **s3_endpoint.env(), SOGS_WORK_DIR=str(tmp / "work"))
    args = ["--input", f"s3://{bucket}/scenes", "--output", f"s3://{bucket}/out/"]
    first = run_job(args, env)
    first_report = get_json(client, bucket, "out/job_report-local.json")
    second = run_job(args, env)
    return {"client": client, "bucket": bucket, "tmp": tmp, "env": env, "first": first, "second": second,
            "first_report": first_report}


@pytest.mark.slow
def test_s3_batch_outputs_reports_and_failures(s3_batch):
    client, bucket, tmp, run = s3_batch["client"], s3_batch["bucket"], s3_batch["tmp"], s3_batch["first"]
    assert run.returncode == 3, run.stdout[-3000:]  # bad input of two kinds (14 and an unsafe key) -> class 3
    out = keys_under(client, bucket, "out/")
    for prefix, name in (("out/nested/b/", "b"),):
        assert f"{prefix}{name}.sog" in out and f"{prefix}meta.json" in out
        assert f"{prefix}compression_report.json" in out and f"{prefix}compression_report.txt" in out
    assert not [k for k in out if k.startswith(("out/bad", "out/old", "out/escape", "out/.sogs"))]
    report = get_json(client, bucket, "out/nested/b/compression_report.json")
    assert report["metadata"] == {"tag": "b"} and report["input"]["source"] == f"s3://{bucket}/scenes/nested/b.ply"
    sog = client.get_object(Bucket=bucket, Key="out/nested/b/b.sog")["Body"].read()
    sizes = {o["name"]: o["bytes"] for o in report["outputs"]}
    assert sizes["b.sog"] == len(sog)
    # the viewer page beside it, served as a page (and the SOG's textures as images) from the bucket
    assert client.head_object(Bucket=bucket, Key="out/nested/b/b.html")["ContentType"] == "text/html; charset=utf-8"
    assert client.head_object(Bucket=bucket, Key="out/nested/b/sh0.webp")["ContentType"] == "image/webp"
    job = s3_batch["first_report"]
    assert job["totals"]["compressed"] == 1 and job["totals"]["failed"] == 2
    failed = {f["scene"]: f for f in job["failures"]}
    assert set(failed) == {"../../escape.ply", "bad.ply"}
    assert "unsafe" in failed["../../escape.ply"]["message"] and failed["bad.ply"]["exit_code"] == 14
    message = (tmp / "ml" / "output" / "message").read_text(encoding="utf-8")
    assert message.startswith("local: 2 of 3 scene(s) failed")
    assert not [p for p in tmp.rglob("escape.ply")]  # nothing written outside the work folder
    assert not (tmp / "work").exists() or not any((tmp / "work").iterdir())  # work folder cleaned up
    assert all(e["host"] == "local" for e in log_events(run.stdout))


@pytest.mark.slow
def test_s3_rerun_is_a_cache_hit(s3_batch):
    client, bucket, run = s3_batch["client"], s3_batch["bucket"], s3_batch["second"]
    assert run.returncode == 3
    job = get_json(client, bucket, "out/job_report-local.json")
    assert job["totals"]["reused"] == 1 and job["totals"]["compressed"] == 0
    reused = [s for s in job["scenes"] if s["status"] == "reused"]
    assert [s["location"] for s in reused] == [f"s3://{bucket}/out/nested/b"]


@pytest.mark.slow
def test_two_hosts_shard_the_keys_and_an_empty_share_exits_0(s3_endpoint, tmp_path: Path):  # noqa: F811
    client = s3_endpoint.client()
    bucket = f"shard{os.urandom(3).hex()}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="in/one.ply", Body=ply_bytes(200, seed=3))
    args = ["--input", f"s3://{bucket}/in/", "--output", f"s3://{bucket}/out/"]
    runs = {}
    for host in ("algo-1", "algo-2"):
        env = job_env(tmp_path / host, **s3_endpoint.env(), SOGS_HOST=host, SM_HOSTS='["algo-1", "algo-2"]')
        runs[host] = run_job(args, env)
    assert runs["algo-1"].returncode == 0 and runs["algo-2"].returncode == 0, runs["algo-2"].stdout[-2000:]
    one = get_json(client, bucket, "out/job_report-algo-1.json")
    two = get_json(client, bucket, "out/job_report-algo-2.json")
    assert one["totals"]["files_processed"] == 1 and two["totals"]["files_processed"] == 0
    assert "out/one/one.sog" in keys_under(client, bucket, "out/")
    assert "nothing to do" in (tmp_path / "algo-2" / "output" / "message").read_text()


def test_s3_error_is_exit_30(s3_endpoint, tmp_path: Path):  # noqa: F811
    env = job_env(tmp_path / "ml", **s3_endpoint.env(), AWS_MAX_ATTEMPTS="1")
    run = run_job(["--input", "s3://no-such-bucket-xyz/in/", "--output", str(tmp_path / "out")], env)
    assert run.returncode == 30
    message = (tmp_path / "ml" / "output" / "message").read_text()
    assert "NoSuchBucket" in message and "testing" not in message
