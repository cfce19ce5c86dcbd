"""Reading SOG v2 (bundle and folder) and v1, and refusing corrupt SOGs with one clear line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from sogfiles import write_v1, write_v2

from sogs_compressor.errors import CorruptSogError, InputNotFoundError
from sogs_compressor.read.sog import read_sog
from sogs_compressor.sample import generate_scene


@pytest.fixture(scope="module")
def v2_folder(tmp_path_factory):
    splats = generate_scene(300, sh_degree=2, seed=4)
    folder = write_v2(splats, tmp_path_factory.mktemp("v2"))
    return splats, folder


def test_bundle_and_folder_decode_identically(v2_folder):
    splats, folder = v2_folder
    from_bundle = read_sog(folder / "scene.sog")
    from_meta = read_sog(folder / "meta.json")
    from_dir = read_sog(folder)
    assert from_bundle.format == "sog" and from_bundle.splats.count == 300
    for other in (from_meta, from_dir):
        for name in ("positions", "log_scales", "rotations", "opacity_logits", "f_dc", "f_rest"):
            assert np.array_equal(getattr(from_bundle.splats, name), getattr(other.splats, name))
    assert from_bundle.splats.sh_degree == 2
    assert np.allclose(from_bundle.splats.positions, splats.positions, atol=1e-3)


def test_v1_layout_is_read(tmp_path):
    splats = generate_scene(256, sh_degree=1, seed=5)
    write_v1(splats, tmp_path)
    scene = read_sog(tmp_path / "meta.json")
    assert scene.format == "sog_v1" and scene.splats.count == 256 and scene.splats.sh_degree == 1
    got = scene.splats
    assert np.allclose(got.positions, splats.positions, atol=1e-3)
    span = splats.log_scales.max(0) - splats.log_scales.min(0)
    assert np.all(np.abs(got.log_scales - splats.log_scales) <= span / 255 * 0.5 + 1e-5)
    assert np.all(np.abs(got.opacity_logits - splats.opacity_logits)
                  <= np.ptp(splats.opacity_logits) / 255 * 0.5 + 1e-5)
    assert np.all(np.abs(got.f_rest - splats.f_rest) <= np.ptp(splats.f_rest) / 255 * 0.5 + 1e-5)


def _corrupt(folder, tmp_path, edit_meta=None, drop=None, replace=None):
    target = tmp_path / "bad"
    shutil.copytree(folder, target)
    (target / "scene.sog").unlink()
    meta = json.loads((target / "meta.json").read_text())
    if edit_meta:
        edit_meta(meta)
    (target / "meta.json").write_text(json.dumps(meta))
    if drop:
        (target / drop).unlink()
    if replace:
        (target / replace[0]).write_bytes(replace[1])
    return target


@pytest.mark.parametrize(
    "edit, drop, replace, message",
    [
        (lambda m: m.update(version=3), None, None, "version"),
        (lambda m: m.update(count=10**6), None, None, "too small"),
        (lambda m: m.update(count=-1), None, None, "out of range"),
        (lambda m: m["scales"].update(codebook=[0.0] * 255), None, None, "256"),
        (lambda m: m["means"].update(mins=[0, "x", 0]), None, None, r"means.mins\[1\] is not a number"),
        (lambda m: m["shN"].update(count=2), None, None, "not below"),
        (lambda m: m["shN"].update(bands=7), None, None, "bands"),
        (lambda m: m["quats"].update(files=["../../etc/passwd"]), None, None, "outside"),
        (None, "sh0.webp", None, "missing file"),
        (None, None, ("quats.webp", b"RIFF0000WEBPVP8L garbage"), "not a decodable WebP"),
        (None, None, ("meta.json", b"{not json"), "not valid JSON"),
    ],
)
def test_corrupt_sog_is_one_clear_error(v2_folder, tmp_path, edit, drop, replace, message):
    _, folder = v2_folder
    bad = _corrupt(folder, tmp_path, edit, drop, replace)
    with pytest.raises(CorruptSogError, match=message):
        read_sog(bad / "meta.json")


def test_truncated_bundle(v2_folder, tmp_path):
    _, folder = v2_folder
    data = (folder / "scene.sog").read_bytes()
    bad = tmp_path / "bad.sog"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises((CorruptSogError, InputNotFoundError)):
        read_sog(bad)


def test_bundle_missing_entry(v2_folder, tmp_path):
    _, folder = v2_folder
    bad = tmp_path / "bad.sog"
    with zipfile.ZipFile(folder / "scene.sog") as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            if info.filename != "scales.webp":
                dst.writestr(info, src.read(info.filename))
    with pytest.raises(CorruptSogError, match="no entry 'scales.webp'"):
        read_sog(bad)


def test_cli_reports_corrupt_sog_in_one_line(v2_folder, tmp_path):
    _, folder = v2_folder
    bad = _corrupt(folder, tmp_path, lambda m: m.update(version=3))
    proc = subprocess.run([sys.executable, "-m", "sogs_compressor", "info", str(bad / "meta.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_reading_a_sog_does_not_import_torch(v2_folder):
    """The device twins beside each decoder (sog/) import torch only when called: ``info`` and ``decompress``
    of a SOG skip torch's seconds of start-up."""
    _, folder = v2_folder
    code = ("import sys; from sogs_compressor.read import read_scene; "
            f"scene = read_scene({str(folder / 'scene.sog')!r}); "
            "print(scene.splats.count, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.split() == ["300", "False"]
