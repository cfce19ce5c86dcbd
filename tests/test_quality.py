"""The quality section: quality_check on generated scenes, previews, and the compare / render commands."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from plyfiles import random_splats

from sogs_compressor.render.camera import load_cameras_json, look_at, select_cameras
from sogs_compressor.render.errors import CamerasFileError, NothingVisibleError
from sogs_compressor.render.quality import default_cameras, quality_check, render_views

CPU = torch.device("cpu")
SMALL = {"views": 2, "size": 48}


@pytest.mark.parametrize("sh_degree", [0, 3])
def test_identical_scenes_report_the_cap_and_a_preview(tmp_path: Path, sh_degree: int) -> None:
    scene = random_splats(400, sh_degree, seed=sh_degree)
    report = quality_check(scene, scene, "fast", CPU, preview_path=tmp_path / "scene.preview.png", **SMALL)
    json.dumps(report, allow_nan=False)
    assert report["summary"]["psnr"] == {"mean": 100.0, "worst": 100.0}
    assert report["summary"]["ssim"]["worst"] == pytest.approx(1.0)
    assert [(v["index"], v["kind"]) for v in report["views"]] == [(0, "orbit"), (1, "orbit"), (2, "interior"),
                                                                  (3, "interior")]
    assert report["cameras"]["source"] == "orbit+interior" and len(report["cameras"]["list"]) == 4
    assert report["cameras"]["kinds"] == {"orbit": 2, "interior": 2}
    assert set(report["by_kind"]) == {"orbit", "interior"} and report["score"]["psnr_content"] == 100.0
    assert report["size"] == [48, 48]
    assert report["renderer"]["sh_degree"] == {"original": sh_degree, "compressed": sh_degree}
    assert report["preview"] == "scene.preview.png"
    preview = tmp_path / "scene.preview.png"
    assert 0 < preview.stat().st_size <= 1_000_000
    with Image.open(preview) as im:
        assert im.width == 3 * 48 + 8 and im.height > 2 * 48


def test_a_changed_scene_scores_lower_the_more_it_changed() -> None:
    scene = random_splats(400, 1, seed=11)
    rng = np.random.default_rng(0)
    small = replace(scene, f_dc=scene.f_dc + rng.normal(0, 0.02, scene.f_dc.shape).astype(np.float32))
    large = replace(scene, f_dc=scene.f_dc + rng.normal(0, 0.3, scene.f_dc.shape).astype(np.float32))
    cameras = default_cameras(scene, **SMALL)
    reference = render_views(scene, cameras, CPU)
    a = quality_check(scene, small, "fast", CPU, cameras, reference=reference)
    b = quality_check(scene, large, "fast", CPU, cameras, reference=reference)
    assert 100.0 > a["summary"]["psnr"]["mean"] > b["summary"]["psnr"]["mean"] + 6
    assert a["summary"]["ssim"]["mean"] > b["summary"]["ssim"]["mean"]
    assert a["summary"]["psnr"]["worst"] <= a["summary"]["psnr"]["mean"]
    # background pixels agree exactly, so the content-only PSNR is the lower one
    assert all(v["psnr_content"] <= v["psnr"] for v in b["views"])


def test_quality_off_renders_nothing() -> None:
    scene = random_splats(10, 0)
    assert quality_check(scene, scene, "off") == {"mode": "off"}


def test_original_showing_nothing_is_a_clear_error() -> None:
    scene = random_splats(50, 0)
    behind = look_at([0, 0, 100], [0, 0, 200], [0, -1, 0], 32, 32)
    with pytest.raises(NothingVisibleError, match="shows nothing"):
        quality_check(scene, scene, "fast", CPU, [behind])


def write_cameras_json(path: Path, count: int = 5) -> None:
    """A 3DGS training cameras.json: rotation = camera-to-world, position = camera centre."""
    entries = []
    for i in range(count):
        cam = look_at([8 * np.cos(i), -2, 8 * np.sin(i)], [0, 0, 0], [0, -1, 0], 200, 100, 40, f"img_{i:03d}")
        entries.append({"id": i, "img_name": cam.name, "width": 200, "height": 100, "fx": cam.fx, "fy": cam.fy,
                        "position": cam.center.tolist(), "rotation": cam.rotation.T.tolist()})
    path.write_text(json.dumps(entries))


def test_cameras_json_round_trip_and_deterministic_subset(tmp_path: Path) -> None:
    write_cameras_json(tmp_path / "cameras.json")
    cameras = load_cameras_json(tmp_path / "cameras.json")
    assert len(cameras) == 5 and cameras[2].name == "img_002"
    origin_cam = cameras[2].rotation @ np.zeros(3) + cameras[2].translation
    assert abs(origin_cam[0]) < 1e-9 and abs(origin_cam[1]) < 1e-9 and origin_cam[2] > 0  # looks at the origin
    assert [c.name for c in select_cameras(cameras, 3)] == ["img_000", "img_002", "img_004"]
    assert cameras[0].fit_long_side(64).width == 64 and cameras[0].fit_long_side(64).height == 32


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ("[]", "non-empty JSON list"),
    ('[{"width": 10}]', "lacks the field"),
    ('[{"width": 10, "height": 10, "fx": 5, "fy": 5, "position": [0, 0], "rotation": [[1, 0, 0]]}]', "position must be 3"),
])
def test_bad_cameras_json_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "cameras.json").write_text(content)
    with pytest.raises(CamerasFileError, match=message):
        load_cameras_json(tmp_path / "cameras.json")
