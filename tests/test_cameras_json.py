"""Training cameras from a 3DGS ``cameras.json``: parsed like any input we read (hostile files are one line and
exit 3), and used by the quality check beside the orbit and interior views, with PSNR per view kind reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clirun import COMPRESS_ADDRESS_SPACE, assert_one_line_error, run_cli
from test_quality import write_cameras_json

from sogs_compressor.render import camera as camera_module
from sogs_compressor.render.camera import load_cameras_json
from sogs_compressor.render.errors import CamerasFileError
from sogs_compressor.report.scene import build_scene_report, scene_report_text
from sogs_compressor.sample import generate_scene
from sogs_compressor.write.ply import write_ply

GOOD = {"id": 0, "img_name": "a", "width": 64, "height": 48, "fx": 50.0, "fy": 50.0, "position": [0, 0, -5],
        "rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}


def entry(**changes) -> dict:
    out = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            del out[key]
        else:
            out[key] = value
    return out


def test_a_3dgs_cameras_json_is_read_as_camera_to_world_rotations(tmp_path: Path) -> None:
    turned = entry(img_name="b", rotation=[[0, 0, 1], [0, 1, 0], [-1, 0, 0]], position=[5, 0, 0])
    (tmp_path / "cameras.json").write_text(json.dumps([GOOD, turned]))
    a, b = load_cameras_json(tmp_path / "cameras.json")
    assert (a.kind, a.name, a.width, a.height, a.cx, a.cy) == ("training", "a", 64, 48, 32.0, 24.0)
    assert np.allclose(a.center, [0, 0, -5]) and np.allclose(b.center, [5, 0, 0])
    # camera b's forward axis (third row of world-to-camera R) is the third column of its camera-to-world matrix:
    # +x, from x = 5, so the point x = 6 is one unit straight ahead
    assert np.allclose(b.rotation[2], [1, 0, 0])
    assert np.allclose(b.rotation @ np.array([6.0, 0, 0]) + b.translation, [0, 0, 1])


HOSTILE = [
    ("NaN literal", '[{"width": 64, "height": 48, "fx": NaN, "fy": 50, "position": [0,0,0], '
                    '"rotation": [[1,0,0],[0,1,0],[0,0,1]]}]', "NaN"),
    ("Infinity literal", json.dumps([GOOD]).replace("50.0", "Infinity", 1), "Infinity"),
    ("overflowing float", json.dumps([GOOD]).replace("50.0", "1e400", 1), "finite number"),
    ("absurd integer", json.dumps([GOOD]).replace("64", "9" * 5000, 1), "integer literal"),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("missing keys", json.dumps([entry(fx=..., position=...)]), "lacks the fields 'fx', 'position'"),
    ("not a list", json.dumps({"cameras": [GOOD]}), "non-empty JSON list"),
    ("empty list", "[]", "non-empty JSON list"),
    ("entry not an object", json.dumps([GOOD, 7]), "camera #1 is not an object"),
    ("string focal length", json.dumps([entry(fy="50")]), "fy must be a finite number"),
    ("boolean width", json.dumps([entry(width=True)]), "width must be a finite number"),
    ("fractional width", json.dumps([entry(width=64.5)]), "implausible image size"),
    ("huge image", json.dumps([entry(height=10**9)]), "implausible image size"),
    ("zero focal length", json.dumps([entry(fx=0)]), "positive focal lengths"),
    ("NaN in position", json.dumps([GOOD]).replace("[0, 0, -5]", "[0, NaN, -5]"), "NaN"),
    ("huge position array", json.dumps([entry(position=[0.0] * 1_000_000)]), "position must be 3 numbers"),
    ("nested position", json.dumps([entry(position=[[0, 0, 0]])]), "position must be 3 numbers"),
    ("string in position", json.dumps([entry(position=[0, "0", 0])]), "position must be 3 finite numbers"),
    ("far position", json.dumps([entry(position=[0, 0, 1e300])]), "beyond"),
    ("ragged rotation", json.dumps([entry(rotation=[[1, 0, 0], [0, 1], [0, 0, 1]])]), "rotation must be 3 x 3"),
    ("scaled rotation", json.dumps([entry(rotation=[[2, 0, 0], [0, 2, 0], [0, 0, 2]])]), "not a rotation"),
    ("reflection", json.dumps([entry(rotation=[[-1, 0, 0], [0, 1, 0], [0, 0, 1]])]), "not a rotation"),
    ("binary garbage", b"\xff\xfe\x00garbage", "cannot read"),
]


@pytest.mark.parametrize(("content", "message"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_cameras_json_is_one_clear_error(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = tmp_path / "cameras.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CamerasFileError, match=message) as caught:
        load_cameras_json(path)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


def test_file_size_and_camera_count_are_capped(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps([GOOD] * 20))
    monkeypatch.setattr(camera_module, "MAX_TRAINING_CAMERAS", 10)
    with pytest.raises(CamerasFileError, match="lists 20 cameras"):
        load_cameras_json(path)
    monkeypatch.setattr(camera_module, "MAX_CAMERAS_FILE_BYTES", 100)
    with pytest.raises(CamerasFileError, match="not plausible"):
        load_cameras_json(path)


def test_names_are_kept_short_and_printable(tmp_path: Path) -> None:
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps([entry(img_name="x\n\x1b[31m" + "y" * 1000), entry(img_name={"a": 1}, id=3)]))
    first, second = load_cameras_json(path)
    assert first.name.isprintable() and len(first.name) == camera_module.MAX_NAME_CHARS
    assert second.name == "1"  # neither a string nor a number: the entry's position in the file


@pytest.fixture(scope="module")
def scene_with_cameras(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("with-cameras")
    write_ply(generate_scene(1500, sh_degree=1, seed=2), folder / "scene.ply")
    write_cameras_json(folder / "cameras.json", count=6)
    return folder


def test_compress_reports_psnr_per_view_kind_with_training_cameras_beside_the_input(scene_with_cameras: Path,
                                                                                   tmp_path: Path) -> None:
    run = run_cli(["compress", str(scene_with_cameras / "scene.ply"), "-o", str(tmp_path / "out"), "--json",
                   "--device", "cpu", "--preset", "fast", "--iterations", "2", "--layout", "bundle"],
                  address_space=COMPRESS_ADDRESS_SPACE, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    quality = result["quality"]
    assert [v["kind"] for v in quality["views"]] == ["orbit"] * 2 + ["interior"] * 2 + ["training"] * 2
    assert quality["cameras"]["kinds"] == {"orbit": 2, "interior": 2, "training": 2}
    assert quality["cameras"]["source"].endswith("cameras.json)")
    for kind in ("orbit", "interior", "training"):
        summary = quality["by_kind"][kind]
        assert summary["views"] == 2 and 10.0 < summary["psnr_content"]["mean"] <= 100.0
    score = quality["score"]["psnr_content"]
    assert score == min(k["psnr_content"]["mean"] for k in quality["by_kind"].values())
    report = build_scene_report(scene="scene", input_info={"name": "scene.ply", "path": "scene.ply", "bytes": 1,
                                                           "sha256": "0"},
                                result=result, outputs=[], cache_key="k", job={})
    assert report["quality"]["by_kind"].keys() == {"orbit", "interior", "training"}
    views_line = next(line for line in scene_report_text(report).splitlines() if line.startswith("views "))
    assert "orbit 2: content PSNR" in views_line and "interior 2:" in views_line and "training 2:" in views_line


def test_compress_with_a_bad_given_cameras_file_fails_at_once(scene_with_cameras: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"width": 64, "height": 48, "fx": NaN}]')
    run = run_cli(["compress", str(scene_with_cameras / "scene.ply"), "-o", str(tmp_path / "out"), "--cameras",
                   str(bad), "--device", "cpu"], address_space=COMPRESS_ADDRESS_SPACE)
    assert_one_line_error(run, 3, "bad.json", "NaN")
    assert not (tmp_path / "out").exists()


def test_compare_with_a_bad_cameras_json_beside_the_original_is_exit_3(tmp_path: Path) -> None:
    write_ply(generate_scene(200, sh_degree=0, seed=4), tmp_path / "a.ply")
    (tmp_path / "cameras.json").write_text(json.dumps([entry(position=[0, 0])]))
    run = run_cli(["compare", str(tmp_path / "a.ply"), str(tmp_path / "a.ply"), "--device", "cpu"],
                  address_space=COMPRESS_ADDRESS_SPACE)
    assert_one_line_error(run, 3, "cameras.json", "camera #0", "position must be 3 numbers")
