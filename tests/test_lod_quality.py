"""The quality check per level of a Streamed SOG (``lod/quality.py``): the engine's level rule, cameras at the
distance the engine shows each level from, PSNR per level in the result and the reports, and a broken level that
the check catches."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_lod import cli

from sogs_compressor.lod.quality import (
    LEVEL_VIEWS,
    engine_level,
    fov_scale,
    level_cameras,
    level_distance,
    measure_levels,
)
from sogs_compressor.read import read_scene
from sogs_compressor.render.camera import look_at, robust_bounds
from sogs_compressor.report.scene import build_scene_report, scene_report_text
from sogs_compressor.sample import generate_scene
from sogs_compressor.write.ply import write_ply

LEVELS = 3
COMMON = ("--layout", "lod", "--lod-chunk-count", 1, "--preset", "fast", "--device", "cpu", "--palette-size", 64,
          "--viewer", "off")
FLAGS = ("--lod-levels", LEVELS, *COMMON)


def test_engine_rule_with_its_defaults():
    """PlayCanvas 2.23's rule, lodBaseDistance 5 and lodMultiplier 3: level 0 below 5, level L from 5 x 3^(L-1)."""
    assert [engine_level(d, 5) for d in (0.0, 1.0, 4.999, 5.0, 14.999, 15.0, 44.9, 45.0, 135.0, 1e6)] == \
        [0, 0, 0, 1, 1, 2, 2, 3, 4, 4]
    assert engine_level(1e6, 3) == 2  # clamped to the coarsest level there is
    assert [level_distance(level) for level in range(5)] == pytest.approx([5 / 3, 5, 15, 45, 135])
    assert [engine_level(level_distance(level), 8) for level in range(8)] == list(range(8))  # each its own level
    assert fov_scale(look_at((0, 0, -5), (0, 0, 0), (0, -1, 0), 64, 64, 45.0)) == pytest.approx(1.0)
    wide = look_at((0, 0, -5), (0, 0, 0), (0, -1, 0), 64, 64, 50.0)
    assert fov_scale(wide) == pytest.approx(math.tan(math.radians(25)) / math.tan(math.radians(22.5)))
    narrow = replace(wide, width=32, cx=16.0)  # half as wide at the same focal length
    assert fov_scale(narrow) == pytest.approx(fov_scale(wide) / 2)  # the narrower side counts


def _box_distance(point, low, high) -> float:
    return float(np.linalg.norm(np.maximum(np.maximum(low - point, point - high), 0.0)))


def test_level_cameras_stand_where_the_engine_shows_the_level():
    scene = generate_scene(3000, sh_degree=0, seed=3)
    low, high = robust_bounds(scene.positions)
    previous = 0.0
    for level in range(5):
        cameras, gap = level_cameras(scene.positions, level, 2, 64)
        assert len(cameras) == 2 and gap > previous  # coarser levels from further away
        previous = gap
        for camera in cameras:
            distance = _box_distance(camera.center, low, high) * fov_scale(camera)  # the engine's measure
            assert distance == pytest.approx(level_distance(level), rel=1e-6)
            assert engine_level(distance * (1 + 1e-6), 5) == level


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A 4K-splat SH-1 scene (about 8 units wide) as a 3-level Streamed SOG with the fast quality check."""
    root = tmp_path_factory.mktemp("lodq")
    ply = root / "scene.ply"
    write_ply(generate_scene(4000, sh_degree=1, seed=11), ply)
    proc = cli("compress", ply, "-o", root / "out", *FLAGS, "--json")
    assert proc.returncode == 0, proc.stderr
    return ply, root / "out", json.loads(proc.stdout)


def test_psnr_per_level_in_the_result_and_the_reports(measured):
    _, _, result = measured
    levels = result["lod"]["levels"]
    assert [lvl["level"] for lvl in levels] == list(range(LEVELS))
    for lvl in levels:
        assert "error" not in lvl, lvl
        for key in ("psnr", "psnr_worst", "psnr_content", "psnr_content_worst", "ssim"):
            assert math.isfinite(lvl[key]), (lvl, key)
        assert lvl["views"] == LEVEL_VIEWS["fast"] and lvl["distance"] == pytest.approx(level_distance(lvl["level"]))
    assert [lvl["distance"] for lvl in levels] == sorted({lvl["distance"] for lvl in levels})
    assert [lvl["camera_distance"] for lvl in levels] == sorted({lvl["camera_distance"] for lvl in levels})
    assert levels[0]["psnr_content"] > 35.0  # level 0 is the input, lightly quantized
    assert result["lod"]["quality"]["rule"]["lod_base_distance"] == 5.0
    assert result["timings"]["level_quality"] > 0
    report = build_scene_report(scene="scene.ply", input_info={"name": "scene.ply", "bytes": 1, "sha256": "0"},
                                result=result, outputs=[], cache_key="k", job={})
    assert report["lod"]["levels"][2]["psnr_content"] == levels[2]["psnr_content"]
    text = scene_report_text(report)
    assert f"levels       {LEVELS} in {result['lod']['chunks']} chunks" in text
    assert "  level 2    1000 splats, 1 chunks" in text and "at engine distance 15" in text


def test_summary_prints_each_level_and_off_skips_it(measured, tmp_path):
    ply, _, _ = measured
    proc = cli("compress", ply, "-o", tmp_path / "a", *FLAGS)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.strip().startswith("level 1:"))
    assert "content PSNR" in line and "at engine distance 5" in line
    proc = cli("compress", ply, "-o", tmp_path / "b", *FLAGS, "--quality-check", "off", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert all("psnr" not in lvl for lvl in result["lod"]["levels"]) and "quality" not in result["lod"]
    assert "level_quality" not in result["timings"]


def test_a_broken_level_scores_clearly_lower(measured):
    """The same measurement with level 1 replaced by a damaged copy (colours shifted, positions jittered by a
    quarter unit, seeded): its PSNR falls far below the honest level's, so the check can fail."""
    ply, out, _ = measured
    original = read_scene(ply).splats
    decoded = [read_scene(out / "lod-meta.json", level).splats for level in range(LEVELS)]
    honest, _ = measure_levels(original, decoded.__getitem__, LEVELS, "fast", torch.device("cpu"))
    rng = np.random.default_rng(0)
    broken = decoded[1].take(np.arange(decoded[1].count))
    broken.positions += rng.normal(0.0, 0.25, broken.positions.shape).astype(np.float32)
    broken.f_dc += 0.5
    damaged = [decoded[0], broken, decoded[2]]
    checked, _ = measure_levels(original, damaged.__getitem__, LEVELS, "fast", torch.device("cpu"))
    assert checked[0] == honest[0] and checked[2] == honest[2]  # the other levels are measured as before
    assert checked[1]["psnr_content"] < honest[1]["psnr_content"] - 6.0, (honest[1], checked[1])
    assert checked[1]["psnr"] < honest[1]["psnr"] - 6.0


def test_a_wrong_level_given_as_input_scores_clearly_lower(measured, tmp_path):
    """End to end: tagged levels whose level 1 is another scene (same size, same SH degree) are written as asked,
    and the per-level check shows it: far below the decimated level 1 measured from the same distance."""
    ply, out, honest = measured
    wrong = tmp_path / "other.ply"
    write_ply(generate_scene(2000, sh_degree=1, seed=99), wrong)
    coarsest = tmp_path / "L2.ply"
    write_ply(read_scene(out / "lod-meta.json", 2).splats, coarsest)
    proc = cli("compress", ply, wrong, coarsest, "-o", tmp_path / "out", "--lod-input", "levels",
               *COMMON, "--json")
    assert proc.returncode == 0, proc.stderr
    levels, before = json.loads(proc.stdout)["lod"]["levels"], honest["lod"]["levels"]
    assert levels[1]["distance"] == before[1]["distance"]
    assert levels[1]["psnr_content"] < before[1]["psnr_content"] - 6.0, (before[1], levels[1])
    assert levels[0]["psnr_content"] > 35.0 and levels[2]["psnr_content"] > before[2]["psnr_content"] - 3.0
