"""S3Manager against a real S3 HTTP endpoint (moto server on 127.0.0.1), reached through AWS_ENDPOINT_URL_S3."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from s3server import s3_endpoint  # noqa: F401  (fixture)

from sogs_compressor.errors import StorageError
from sogs_compressor.fetch.s3 import S3Manager, transfer_config_from_env
from sogs_compressor.fetch.uri import S3Uri, parse_s3_uri

MiB = 1024 * 1024


@pytest.fixture()
def s3(s3_endpoint, monkeypatch):  # noqa: F811
    for key, value in s3_endpoint.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SOGS_S3_MULTIPART_THRESHOLD", str(5 * MiB))
    client = s3_endpoint.client()
    bucket = f"b{os.urandom(4).hex()}"
    client.create_bucket(Bucket=bucket)
    return S3Manager(), client, bucket


def test_download_prefix_keeps_nested_layout_and_skips_markers_and_siblings(s3, tmp_path: Path):
    manager, client, bucket = s3
    objects = {"scenes/a.ply": b"a", "scenes/deep/er/b.ply": b"bb", "scenes/odd #name?.ply": b"c",
               "scenes/deep/": b"", "scenes-old/x.ply": b"old"}
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    result = manager.download(parse_s3_uri(f"s3://{bucket}/scenes"), tmp_path)
    got = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert got == ["a.ply", "deep/er/b.ply", "odd #name?.ply"]
    assert (tmp_path / "deep/er/b.ply").read_bytes() == b"bb"
    assert result.rejected == []


def test_unsafe_keys_are_rejected_and_nothing_escapes(s3, tmp_path: Path):
    manager, client, bucket = s3
    for key in ("in/ok.ply", "in/../../escape.ply", "in/a/./b.ply", "in//abs.ply"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    keys = {o.key for o in manager.list_objects(S3Uri(bucket, "in/"))}
    assert "in/../../escape.ply" in keys  # the server kept the key as written
    dest = tmp_path / "dest"
    result = manager.download(S3Uri(bucket, "in/"), dest)
    assert [k for k, _ in result.files] == ["in/ok.ply"]
    assert sorted(k for k, _ in result.rejected) == ["in/../../escape.ply", "in//abs.ply", "in/a/./b.ply"]
    assert all("unsafe" in reason for _, reason in result.rejected)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["ok.ply"]


def test_multipart_upload_and_download_round_trip(s3, tmp_path: Path):
    manager, client, bucket = s3
    assert manager.transfer_config.multipart_threshold == 5 * MiB
    payload = os.urandom(12 * MiB + 123)
    folder = tmp_path / "up"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "big.ply").write_bytes(payload)
    (folder / "compression_report.json").write_text("{}")
    uploaded = manager.upload_dir(folder, S3Uri(bucket, "out"), last=("compression_report.json",))
    assert [u.key for u in uploaded] == ["out/sub/big.ply", "out/compression_report.json"]
    etag = client.head_object(Bucket=bucket, Key="out/sub/big.ply")["ETag"]
    assert etag.strip('"').endswith("-3")  # 3 parts of 5 MiB: really multipart
    manager.download(S3Uri(bucket, "out/sub/big.ply"), tmp_path / "down")
    got = (tmp_path / "down" / "big.ply").read_bytes()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_listing_is_paginated(s3):
    manager, client, bucket = s3
    for i in range(1005):
        client.put_object(Bucket=bucket, Key=f"many/{i:04d}.ply", Body=b"")
    assert len(list(manager.list_objects(S3Uri(bucket, "many/")))) == 1005


def test_head_read_small_and_errors(s3):
    manager, client, bucket = s3
    client.put_object(Bucket=bucket, Key="r.json", Body=b'{"a": 1}')
    assert manager.head(S3Uri(bucket, "r.json")) == 8
    assert manager.head(S3Uri(bucket, "missing.json")) is None
    assert manager.read_small(S3Uri(bucket, "r.json")) == b'{"a": 1}'
    assert manager.read_small(S3Uri(bucket, "r.json"), limit=4) is None
    with pytest.raises(StorageError, match="NoSuchBucket"):
        list(manager.list_objects(S3Uri("no-such-bucket-here", "x/")))


def test_transfer_config_defaults_to_64_mib_chunks():
    config = transfer_config_from_env({})
    assert config.multipart_threshold == 64 * MiB and config.multipart_chunksize == 64 * MiB
