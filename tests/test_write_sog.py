"""Bundle and folder layouts on disk, and that writes are atomic."""

from __future__ import annotations

import json
import struct
import zipfile

import numpy as np
import pytest

from sogs_compressor.sog.meta import meta_bytes
from sogs_compressor.sog.webp import decode_webp, encode_webp
from sogs_compressor.write import sog as sog_writer

META = {
    "version": 2, "count": 1,
    "means": {"mins": [0, 0, 0], "maxs": [1, 1, 1], "files": ["means_l.webp", "means_u.webp"]},
    "scales": {"codebook": [0.0] * 256, "files": ["scales.webp"]},
    "quats": {"files": ["quats.webp"]},
    "sh0": {"codebook": [0.0] * 256, "files": ["sh0.webp"]},
}
NAMES = ["means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp"]


def _webps():
    rng = np.random.default_rng(0)
    return {name: encode_webp(rng.integers(0, 256, (4, 4, 4), dtype=np.uint8), method=0) for name in NAMES}


def test_webp_is_lossless_and_keeps_colour_under_zero_alpha():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (9, 13, 4), dtype=np.uint8)
    image[..., 3][image[..., 3] < 128] = 0
    for method in (0, 4, 6):
        assert np.array_equal(decode_webp(encode_webp(image, method=method, quality=50)), image)


def test_bundle_layout_matches_what_the_engine_needs(tmp_path):
    files = sog_writer.write_sog(tmp_path, "scene", "bundle", META, _webps())
    path = tmp_path / "scene.sog"
    assert [f.role for f in files] == ["bundle"] and files[0].bytes == path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["means_l.webp", "means_u.webp", "quats.webp", "scales.webp",
                                               "sh0.webp", "meta.json"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        assert archive.comment == b""
        assert json.loads(archive.read("meta.json")) == META
    data = path.read_bytes()
    # end-of-central-directory record in the last 22 bytes (no comment), no zip64
    assert data[-22:-18] == b"PK\x05\x06"
    assert struct.unpack("<H", data[-2:])[0] == 0
    assert b"PK\x06\x06" not in data


def test_directory_layout_and_no_leftover_temp_files(tmp_path):
    files = sog_writer.write_sog(tmp_path, "scene", "both", META, _webps())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES + ["meta.json", "scene.sog"])
    assert files[-1].role == "bundle" and files[-2].role == "meta"
    assert json.loads((tmp_path / "meta.json").read_text()) == META


def test_meta_json_refuses_nan():
    with pytest.raises(ValueError):
        meta_bytes({"x": float("nan")})


def test_interrupted_directory_write_leaves_no_meta_json(tmp_path, monkeypatch):
    sog_writer.write_sog(tmp_path, "scene", "dir", META, _webps())  # an older complete output
    calls = {"n": 0}
    real_replace = sog_writer.os.replace

    def failing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(sog_writer.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        sog_writer.write_sog(tmp_path, "scene", "dir", META, _webps())
    assert not (tmp_path / "meta.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_interrupted_bundle_write_keeps_no_partial_file(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sog_writer.os, "fsync", boom)
    with pytest.raises(Exception, match="No space left"):
        sog_writer.write_sog(tmp_path, "scene", "bundle", META, _webps())
    assert list(tmp_path.iterdir()) == []
