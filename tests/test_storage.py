"""The storage interface (sogs_compressor/storage/): one contract, run against the local disk and against S3
(moto's server on 127.0.0.1, reached through AWS_ENDPOINT_URL_S3 as the job reaches AWS)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from s3server import s3_endpoint  # noqa: F401  (fixture)

from sogs_compressor.errors import InputNotFoundError, Interrupted, OutputError, StorageError
from sogs_compressor.fetch.uri import S3Uri
from sogs_compressor.storage.base import Storage, StoredObject
from sogs_compressor.storage.local import LocalStorage
from sogs_compressor.storage.location import open_input, open_output
from sogs_compressor.storage.s3 import S3Storage


@dataclass
class Backend:
    storage: Storage
    put: Callable[[str, bytes], None]  # writes an object around the interface, as another writer would
    get: Callable[[str], bytes | None]  # reads one around the interface (None: not there)


@pytest.fixture()
def s3_client(s3_endpoint, monkeypatch):  # noqa: F811
    for key, value in s3_endpoint.env().items():
        monkeypatch.setenv(key, value)
    return s3_endpoint.client()


def local_backend(tmp_path: Path) -> Backend:
    root = tmp_path / "root"
    root.mkdir()

    def put(key: str, body: bytes) -> None:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(body)

    def get(key: str) -> bytes | None:
        return (root / key).read_bytes() if (root / key).is_file() else None

    return Backend(LocalStorage(root), put, get)


def s3_backend(client) -> Backend:
    from sogs_compressor.fetch.s3 import S3Manager

    bucket = f"b{os.urandom(4).hex()}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="root-sibling/a.ply", Body=b"not below the root")

    def put(key: str, body: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"root/{key}", Body=body)

    def get(key: str) -> bytes | None:
        try:
            return client.get_object(Bucket=bucket, Key=f"root/{key}")["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    return Backend(S3Storage(S3Manager(), S3Uri(bucket, "root")), put, get)


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path: Path) -> Backend:
    if request.param == "local":
        return local_backend(tmp_path)
    return s3_backend(request.getfixturevalue("s3_client"))


TREE = {"a.ply": b"aaa", "deep/er/b.ply": b"bb", "deep/c.json": b"{}", "odd #name?.ply": b"c"}


def fill(backend: Backend) -> None:
    for key, body in TREE.items():
        backend.put(key, body)


# ---- the contract, on both back ends ------------------------------------------------------------------------
def test_list_gives_every_object_below_a_folder_with_its_size(backend: Backend):
    fill(backend)
    assert {o.key: o.size for o in backend.storage.list()} == {k: len(v) for k, v in TREE.items()}
    assert {o.key for o in backend.storage.list("deep")} == {"deep/er/b.ply", "deep/c.json"}
    assert backend.storage.list("de") == []  # a folder, never a part of a name
    assert backend.storage.list("nothing/here") == []
    assert backend.storage.list() == backend.storage.list()  # a stable order


def test_list_level_gives_one_folder_and_the_names_of_its_subfolders(backend: Backend):
    fill(backend)
    objects, folders = backend.storage.list_level()
    assert ({o.key for o in objects}, folders) == ({"a.ply", "odd #name?.ply"}, ["deep"])
    objects, folders = backend.storage.list_level("deep")
    assert (objects, folders) == ([StoredObject("deep/c.json", 2)], ["er"])
    assert backend.storage.list_level("missing") == ([], [])


def test_head_and_bounded_read(backend: Backend):
    fill(backend)
    storage = backend.storage
    assert storage.head("deep/er/b.ply") == StoredObject("deep/er/b.ply", 2)
    assert storage.head("missing.ply") is None and storage.head("deep") is None  # a folder is no object
    assert storage.read("a.ply", 3) == b"aaa"
    assert storage.read("a.ply", 2) is None  # larger than asked for: not read at all
    assert storage.read("missing.json", 100) is None


def test_download_is_complete_or_absent(backend: Backend, tmp_path: Path):
    fill(backend)
    target = tmp_path / "down" / "x" / "b.ply"
    backend.storage.download("deep/er/b.ply", target, expected_size=2)
    assert target.read_bytes() == b"bb"
    with pytest.raises(StorageError, match="got 2 bytes, the listing said 3"):
        backend.storage.download("deep/er/b.ply", tmp_path / "short" / "b.ply", expected_size=3)
    assert not (tmp_path / "short" / "b.ply").exists()
    with pytest.raises((StorageError, OSError)):
        backend.storage.download("missing.ply", tmp_path / "none" / "m.ply")
    assert not (tmp_path / "none" / "m.ply").exists()
    assert [p.name for p in (tmp_path / "down" / "x").iterdir()] == ["b.ply"]  # no temporary left beside it


def test_upload_replaces_and_delete_removes(backend: Backend, tmp_path: Path):
    fill(backend)
    source = tmp_path / "new.sog"
    source.write_bytes(b"new bytes")
    backend.storage.upload(source, "out/s/new.sog")
    assert backend.get("out/s/new.sog") == b"new bytes" and source.read_bytes() == b"new bytes"
    source.write_bytes(b"newer")
    backend.storage.upload(source, "out/s/new.sog", consume=True)
    assert backend.get("out/s/new.sog") == b"newer"
    backend.storage.delete("out/s/new.sog")
    backend.storage.delete("out/s/never-there.sog")  # no error
    assert backend.get("out/s/new.sog") is None
    # no folder is left behind by the removal of its last object, on the disk as in S3
    assert "out" not in backend.storage.list_level()[1]
    assert {o.key for o in backend.storage.list()} == set(TREE)


def test_describe_names_the_place_as_people_know_it(backend: Backend):
    storage = backend.storage
    described = storage.describe("deep/er/b.ply")
    if storage.remote:
        assert described.startswith("s3://b") and described.endswith("/root/deep/er/b.ply")
    else:
        assert Path(described) == storage.root / "deep" / "er" / "b.ply"


def test_only_the_local_disk_has_local_files(backend: Backend):
    fill(backend)
    found = backend.storage.local_file("deep/er/b.ply")
    if backend.storage.remote:
        assert found is None
    else:
        assert found is not None and found.read_bytes() == b"bb"
        assert not backend.storage.local_file("missing.ply").exists()  # the place it would be


# ---- what is particular to one back end ----------------------------------------------------------------------
def test_the_disk_listing_skips_hidden_entries_and_links_out_of_the_root(tmp_path: Path):
    backend = local_backend(tmp_path)
    for key in ("b.ply", "a/c.ply", ".hidden/x.ply", "a/.e.ply"):
        backend.put(key, b"x")
    (tmp_path / "outside.ply").write_bytes(b"outside")
    (tmp_path / "root" / "link-out.ply").symlink_to(tmp_path / "outside.ply")
    (tmp_path / "root" / "link-in.ply").symlink_to(tmp_path / "root" / "b.ply")
    # folder by folder: a folder's files before its subfolders
    assert [o.key for o in backend.storage.list()] == ["b.ply", "link-in.ply", "a/c.ply"]
    objects, folders = backend.storage.list_level()  # one level shows every entry: promotion must see it all
    assert {o.key for o in objects} == {"b.ply", "link-in.ply", "link-out.ply"} and folders == [".hidden", "a"]


def test_no_disk_key_reaches_outside_the_root(tmp_path: Path):
    backend = local_backend(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "elsewhere")
    source = tmp_path / "f"
    source.write_bytes(b"x")
    for key in ("../elsewhere/f", "/etc/hostname", "a//b", "a/./b", "a\x00b"):
        with pytest.raises(OutputError, match="outside"):
            backend.storage.head(key)
    with pytest.raises(OutputError, match="outside the output folder"):
        backend.storage.upload(source, "link/f")
    with pytest.raises(OutputError, match="outside the output folder"):
        backend.storage.delete("link/f")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_the_disk_keeps_folders_that_still_hold_something(tmp_path: Path):
    backend = local_backend(tmp_path)
    for key in ("s/0_0/meta.json", "s/0_0/sh0.webp", "s/0_1/meta.json"):
        backend.put(key, b"x")
    backend.storage.delete("s/0_0/meta.json")
    assert (tmp_path / "root" / "s" / "0_0").is_dir()
    backend.storage.delete("s/0_0/sh0.webp")
    assert not (tmp_path / "root" / "s" / "0_0").exists() and (tmp_path / "root" / "s" / "0_1").is_dir()
    backend.storage.delete("s/0_1/meta.json")
    assert list((tmp_path / "root").iterdir()) == [] and (tmp_path / "root").is_dir()  # the root stays


def test_s3_keys_are_used_as_written_and_calls_stop_when_asked(s3_client, tmp_path: Path):
    backend = s3_backend(s3_client)
    backend.put("../../escape.ply", b"x")
    backend.put("a//b.ply", b"yy")
    assert {o.key: o.size for o in backend.storage.list()} == {"../../escape.ply": 1, "a//b.ply": 2}
    assert backend.storage.head("a//b.ply") == StoredObject("a//b.ply", 2) and backend.storage.head("a/b.ply") is None
    stopped = S3Storage(backend.storage.manager, backend.storage.root, should_stop=lambda: True)
    for call in (stopped.list, lambda: stopped.head("a//b.ply"), lambda: stopped.read("a//b.ply", 10),
                 lambda: stopped.download("a//b.ply", tmp_path / "d.ply")):
        with pytest.raises(Interrupted):
            call()


def test_open_input_picks_the_storage_and_the_object(s3_client, tmp_path: Path):
    from sogs_compressor.fetch.s3 import S3Manager

    manager = S3Manager()
    storage, key = open_input("s3://bucket/in/deep/a.PLY", lambda: manager)
    assert (storage.describe(), key) == ("s3://bucket/in/deep/", "a.PLY")
    storage, key = open_input("s3://bucket/in", lambda: manager)
    assert (storage.describe(), key) == ("s3://bucket/in/", "")
    storage, key = open_input("s3://bucket/top.sog", lambda: manager)
    assert (storage.describe(key), key) == ("s3://bucket/top.sog", "top.sog")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.ply").write_bytes(b"x")
    storage, key = open_input(str(tmp_path / "in" / "a.ply"), lambda: pytest.fail("no S3 for a local input"))
    assert (storage.local_file(key), storage.remote) == (tmp_path / "in" / "a.ply", False)
    storage, key = open_input(str(tmp_path / "in"), lambda: pytest.fail("no S3 for a local input"))
    assert (Path(storage.describe()), key) == (tmp_path / "in", "")
    with pytest.raises(InputNotFoundError, match="does not exist"):
        open_input(str(tmp_path / "missing"), lambda: manager)
    assert open_output(None, tmp_path / "out", lambda: pytest.fail("no S3")).remote is False
    assert open_output(S3Uri("bucket", "out"), tmp_path / "out", lambda: manager).describe("a") == "s3://bucket/out/a"
