"""S3Manager against a real S3 HTTP endpoint (moto server on 127.0.0.1), reached through AWS_ENDPOINT_URL_S3."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from s3server import s3_endpoint  # noqa: F401  (fixture)

from sogs_compressor.errors import Interrupted, StorageError
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


def test_listing_skips_markers_and_siblings_and_keeps_odd_keys(s3):
    manager, client, bucket = s3
    objects = {"scenes/a.ply": b"a", "scenes/deep/er/b.ply": b"bb", "scenes/odd #name?.ply": b"c",
               "scenes/deep/": b"", "scenes-old/x.ply": b"old", "scenes/../../escape.ply": b"x"}
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    listed = {o.key: o.size for o in manager.list_objects(parse_s3_uri(f"s3://{bucket}/scenes"))}
    assert listed == {"scenes/a.ply": 1, "scenes/deep/er/b.ply": 2, "scenes/odd #name?.ply": 1,
                      "scenes/../../escape.ply": 1}  # the server keeps the key as written; the job refuses it


def test_download_checks_the_size_from_the_listing(s3, tmp_path: Path):
    manager, client, bucket = s3
    client.put_object(Bucket=bucket, Key="in/a.ply", Body=b"abcdef")
    manager.download_file(S3Uri(bucket, "in/a.ply"), tmp_path / "x" / "a.ply", expected_size=6)
    assert (tmp_path / "x" / "a.ply").read_bytes() == b"abcdef"
    with pytest.raises(StorageError, match="got 6 bytes, the listing said 7"):
        manager.download_file(S3Uri(bucket, "in/a.ply"), tmp_path / "y" / "a.ply", expected_size=7)
    assert not (tmp_path / "y" / "a.ply").exists()
    with pytest.raises(StorageError, match="download failed.*(404|Not Found|NoSuchKey)"):
        manager.download_file(S3Uri(bucket, "in/missing.ply"), tmp_path / "z" / "m.ply")


def test_multipart_upload_and_download_round_trip(s3, tmp_path: Path):
    manager, client, bucket = s3
    assert manager.transfer_config.multipart_threshold == 5 * MiB
    payload = os.urandom(12 * MiB + 123)
    big = tmp_path / "up" / "big.ply"
    big.parent.mkdir()
    big.write_bytes(payload)
    manager.upload_file(big, S3Uri(bucket, "out/sub/big.ply"))
    etag = client.head_object(Bucket=bucket, Key="out/sub/big.ply")["ETag"]
    assert etag.strip('"').endswith("-3")  # 3 parts of 5 MiB: really multipart
    manager.download_file(S3Uri(bucket, "out/sub/big.ply"), tmp_path / "down" / "big.ply", len(payload))
    got = (tmp_path / "down" / "big.ply").read_bytes()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()
    manager.close()


def test_a_set_stop_flag_interrupts_every_call(s3, tmp_path: Path):
    manager, client, bucket = s3
    client.put_object(Bucket=bucket, Key="in/a.ply", Body=b"abc")
    stop = lambda: True  # noqa: E731
    with pytest.raises(Interrupted):
        manager.list_objects(S3Uri(bucket, "in/"), stop)
    with pytest.raises(Interrupted):
        manager.download_file(S3Uri(bucket, "in/a.ply"), tmp_path / "a.ply", 3, stop)
    (tmp_path / "up.json").write_text("{}")
    with pytest.raises(Interrupted):
        manager.upload_file(tmp_path / "up.json", S3Uri(bucket, "up.json"), stop)
    with pytest.raises(Interrupted):
        manager.head(S3Uri(bucket, "in/a.ply"), stop)
    assert manager.head(S3Uri(bucket, "up.json")) is None and not (tmp_path / "a.ply").exists()


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
