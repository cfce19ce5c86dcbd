"""Issue 12, items 14-17 and 20: hostile keys, sharding and the completion marker, with the real job (entrypoint
subprocess) against the moto S3 server, through the fault proxy where a request must fail."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest
from faultproxy import FaultPlan, FaultProxy, Rule
from s3server import job_env, ply_bytes, run_job, s3_endpoint, write_ply  # noqa: F401

from sogs_compressor.job.naming import NAME_LIMIT

LONG = "a" * 247  # + ".ply": a 251-byte name, legal in S3 and on disk
NFC, NFD = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
CODEC = ["--layout", "bundle", "--quality-check", "off"]


def keys_under(client, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def get_json(client, bucket: str, key: str) -> dict:
    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def new_bucket(client, prefix: str) -> str:
    name = f"{prefix}{os.urandom(3).hex()}"
    client.create_bucket(Bucket=name)
    return name


def s3_run(endpoint, tmp: Path, args: list[str], proxy: FaultProxy | None = None, **env: str):
    extra = {"AWS_ENDPOINT_URL_S3": proxy.url} if proxy else {}
    return run_job([*args, *CODEC], job_env(tmp, **{**endpoint.env(), **extra}, SOGS_WORK_DIR=str(tmp / "work"),
                                            **env))


@pytest.fixture(scope="module")
def hostile(s3_endpoint, tmp_path_factory):  # noqa: F811
    """One input holding a file and a folder of the same name, a 251-byte name with its sidecar, café in NFC and
    NFD, a key whose download always fails, and a good scene."""
    client = s3_endpoint.client()
    bucket = new_bucket(client, "hostile")
    bodies = {"fd.ply": ply_bytes(200, seed=1), "fd.ply/inner.ply": ply_bytes(200, seed=2),
              f"{LONG}.ply": ply_bytes(200, seed=3), f"{NFC}.ply": ply_bytes(200, seed=4),
              f"{NFD}.ply": ply_bytes(200, seed=5), "flaky.ply": ply_bytes(200, seed=6),
              "good.ply": ply_bytes(200, seed=7)}
    for rel, body in bodies.items():
        client.put_object(Bucket=bucket, Key=f"in/{rel}", Body=body)
    client.put_object(Bucket=bucket, Key=f"in/{LONG}.metadata.json", Body=b'{"tag": "long"}')
    never = Rule(f"^/{bucket}/in/flaky\\.ply$", "500", method="GET")
    with FaultProxy(s3_endpoint.url, FaultPlan(rules=[never])) as proxy:
        run = s3_run(s3_endpoint, tmp_path_factory.mktemp("hostile"),
                     ["--input", f"s3://{bucket}/in/", "--output", f"s3://{bucket}/out/"], proxy,
                     AWS_MAX_ATTEMPTS="2")
    report = get_json(client, bucket, "out/job_report-local.json")
    return {"client": client, "bucket": bucket, "run": run, "report": report,
            "scenes": {s["scene"]: s for s in report["scenes"]}, "keys": keys_under(client, bucket, "out/")}


@pytest.mark.slow
def test_14_a_file_and_a_folder_of_one_name_and_a_failed_download_fail_nothing_else(hostile):
    run, scenes, keys = hostile["run"], hostile["scenes"], hostile["keys"]
    assert "FileExistsError" not in run.stdout, run.stdout[-3000:]
    assert not [f for f in hostile["report"]["failures"] if f["kind"] == "internal"]
    assert scenes["fd.ply"]["status"] == "ok" and scenes["fd.ply/inner.ply"]["status"] == "ok"
    assert "out/fd/compression_report.json" in keys and "out/fd.ply/inner/compression_report.json" in keys
    flaky = scenes["flaky.ply"]
    assert flaky["status"] == "failed" and flaky["error"]["exit_code"] == 30
    assert "flaky.ply" in flaky["error"]["message"] and "InternalError" in flaky["error"]["message"]
    assert not [k for k in keys if k.startswith("out/flaky/")]
    assert scenes["good.ply"]["status"] == "ok"
    # failures of several classes: the most serious one (30, S3) is the job's code, as documented
    assert run.returncode == 30 and hostile["report"]["exit_code"] == 30


@pytest.mark.slow
def test_15_a_251_byte_name_gets_a_shortened_output_folder_and_keeps_its_sidecar(hostile):
    scene = hostile["scenes"][f"{LONG}.ply"]
    assert scene["status"] == "ok", scene
    folder = scene["output"]
    assert folder != LONG and scene["output_shortened_from"] == LONG and len(folder.encode()) <= NAME_LIMIT
    report = get_json(hostile["client"], hostile["bucket"], f"out/{folder}/compression_report.json")
    assert report["metadata"] == {"tag": "long"} and report["input"]["name"] == f"{LONG}.ply"
    assert f"out/{folder}/{folder}.sog" in hostile["keys"]
    assert "output_error" not in json.dumps(hostile["report"]["failures"])


@pytest.mark.slow
def test_20_cafe_in_nfc_and_nfd_is_reported_as_a_clash(hostile):
    nfc, nfd = hostile["scenes"][f"{NFC}.ply"], hostile["scenes"][f"{NFD}.ply"]
    assert sorted([nfc["status"], nfd["status"]]) == ["failed", "ok"]
    failed = nfc if nfc["status"] == "failed" else nfd
    assert failed["error"]["exit_code"] == 3 and "Unicode normalisation" in failed["error"]["message"]
    assert len([k for k in hostile["keys"] if k.endswith("compression_report.json") and "caf" in k]) == 1


@pytest.mark.slow
def test_16_sharding_does_not_depend_on_each_hosts_listing(s3_endpoint, tmp_path: Path):  # noqa: F811
    """A key added between two hosts' listings used to shift every later index: scenes lost or done twice."""
    client = s3_endpoint.client()
    bucket = new_bucket(client, "shard")
    names = [f"s{i}.ply" for i in range(5)]
    for i, name in enumerate(names):
        client.put_object(Bucket=bucket, Key=f"in/{name}", Body=ply_bytes(150, seed=i))
    args = ["--input", f"s3://{bucket}/in/", "--output", f"s3://{bucket}/out/"]
    hosts = '["algo-1", "algo-2"]'
    first = s3_run(s3_endpoint, tmp_path / "one", args, SOGS_HOST="algo-1", SM_HOSTS=hosts)
    client.put_object(Bucket=bucket, Key="in/0-new.ply", Body=ply_bytes(150, seed=9))  # sorts before the others
    second = s3_run(s3_endpoint, tmp_path / "two", args, SOGS_HOST="algo-2", SM_HOSTS=hosts)
    assert first.returncode == 0 and second.returncode == 0, first.stdout[-2000:] + second.stdout[-2000:]
    one = get_json(client, bucket, "out/job_report-algo-1.json")
    two = get_json(client, bucket, "out/job_report-algo-2.json")
    done = [s["scene"] for r in (one, two) for s in r["scenes"] if s["status"] == "ok"]
    assert sorted(set(done)) == sorted(done), "a scene was done twice"
    assert set(names) <= set(done), "a scene was lost"
    for report in (one, two):
        sharding = report["sharding"]
        assert "sha256" in sharding["rule"] and sharding["hosts"] == ["algo-1", "algo-2"]
        assert sorted(k.rsplit("/", 1)[-1] for k in sharding["keys"]) == sorted(
            s["scene"] for s in report["scenes"])
    assert one["sharding"]["listed"] == 5 and two["sharding"]["listed"] == 6
    new_owner = "algo-2" if "0-new.ply" in [s["scene"] for s in two["scenes"]] else "algo-1"
    assert ("0-new.ply" in done) == (new_owner == "algo-2")  # algo-1 listed before the key existed


@pytest.mark.slow
def test_17_the_marker_is_the_last_object_and_reruns_notice_missing_pieces(s3_endpoint, tmp_path: Path):  # noqa: F811
    client = s3_endpoint.client()
    bucket = new_bucket(client, "marker")
    client.put_object(Bucket=bucket, Key="in/m.ply", Body=ply_bytes(200, seed=1))
    args = ["--input", f"s3://{bucket}/in/", "--output", f"s3://{bucket}/out/"]
    marker, text = "out/m/compression_report.json", "out/m/compression_report.txt"
    assert s3_run(s3_endpoint, tmp_path / "a", args).returncode == 0
    assert {marker, text} <= set(keys_under(client, bucket))

    # A new output whose text report cannot be written: the earlier marker is gone first, no new one appears.
    failing_text = Rule(f"^/{bucket}/out/m/compression_report\\.txt$", "500", method="PUT")
    with FaultProxy(s3_endpoint.url, FaultPlan(rules=[failing_text])) as proxy:
        run = s3_run(s3_endpoint, tmp_path / "b", [*args, "--force"], proxy, AWS_MAX_ATTEMPTS="2")
    assert run.returncode == 30 and failing_text.count >= 1  # the text report was tried, and failed
    keys = keys_under(client, bucket)
    assert marker not in keys and "out/m/m.sog" in keys
    assert get_json(client, bucket, "out/job_report-local.json")["scenes"][0]["status"] == "failed"

    rerun = s3_run(s3_endpoint, tmp_path / "c", args)
    assert rerun.returncode == 0 and {marker, text} <= set(keys_under(client, bucket))
    assert get_json(client, bucket, "out/job_report-local.json")["scenes"][0]["status"] == "ok"

    client.delete_object(Bucket=bucket, Key=text)  # a missing piece beside a marker: not a cache hit
    again = s3_run(s3_endpoint, tmp_path / "d", args)
    assert again.returncode == 0 and text in keys_under(client, bucket)
    assert get_json(client, bucket, "out/job_report-local.json")["scenes"][0]["status"] == "ok"


@pytest.mark.slow
def test_15_and_14_local_long_names_and_nested_output_folders(tmp_path: Path):
    """A 251-byte local file name (its sidecar probe overflowed the name limit: exit 40), and scenes whose output
    folders nest (a.ply -> a/, a/b.ply -> a/b/): compressing a/ again must not delete a/b/."""
    inputs = tmp_path / "in"
    for rel, seed in ((f"{LONG}.ply", 1), ("a.ply", 2), ("a/b.ply", 3)):
        write_ply(inputs / rel, 150, seed=seed)
    args = ["--input", str(inputs), "--output", str(tmp_path / "out")]
    run = run_job([*args, *CODEC], job_env(tmp_path / "ml"))
    assert run.returncode == 0, run.stdout[-3000:]
    report = json.loads((tmp_path / "out" / "job_report-local.json").read_text())
    long_scene = next(s for s in report["scenes"] if s["scene"] == f"{LONG}.ply")
    assert (tmp_path / "out" / long_scene["output"] / "compression_report.json").is_file()
    only_a = ["--input", str(inputs / "a.ply"), "--output", str(tmp_path / "out"), "--force"]
    forced = run_job([*only_a, *CODEC], job_env(tmp_path / "ml2"))
    assert forced.returncode == 0, forced.stdout[-3000:]
    assert (tmp_path / "out" / "a" / "compression_report.json").is_file()
    assert (tmp_path / "out" / "a" / "b" / "compression_report.json").is_file()
