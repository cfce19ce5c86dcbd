"""``--target-psnr``: the ladder, the search, and the whole search through the codec on a small scene."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sogs_compressor import target
from sogs_compressor.errors import SogsError
from sogs_compressor.options import CompressOptions
from sogs_compressor.pipeline import compress_splats
from sogs_compressor.sample import generate_scene


def _fake(psnrs: list[float], calls: list[int]):
    def evaluate(rung: int) -> target.Probe:
        calls.append(rung)
        return target.Probe(rung, {"position_bits": 16 - rung}, bytes=1000 - rung, psnr_content=psnrs[rung])

    return evaluate


@pytest.mark.parametrize(("goal", "expected"), [(45.0, 3), (50.0, 0), (41.0, 7), (44.0, 4), (42.5, 6)])
def test_search_picks_the_last_rung_meeting_the_target_in_log_probes(goal, expected):
    psnrs = [50.0, 48.0, 46.5, 45.0, 44.0, 43.0, 42.5, 41.0]  # falling along the ladder
    calls: list[int] = []
    chosen, probes = target.search(goal, len(psnrs), _fake(psnrs, calls))
    assert chosen.rung == expected and chosen.psnr_content >= goal
    assert len(calls) == len(set(calls)) <= math.ceil(math.log2(len(psnrs))) + 1
    assert set(probes) == set(calls)


def test_search_falls_back_to_the_first_rung_when_nothing_meets_the_target():
    calls: list[int] = []
    chosen, probes = target.search(60.0, 8, _fake([50.0 - r for r in range(8)], calls))
    assert chosen.rung == 0 and 0 in probes
    report = target.summary(60.0, chosen, probes)
    assert report["met"] is False and report["chosen"]["rung"] == 0
    assert [t["rung"] for t in report["tried"]] == sorted(probes)


def test_rung_settings_hold_explicit_settings_and_scale_the_palette():
    base = {"palette_size": 16384, "palette_order": "frequency", "rate_weight": 2.0, "palette_rate_weight": 16.0,
            "position_bits": 15}
    rung = target.LADDER[4]
    free = target.rung_settings(base, rung, set())
    assert free["position_bits"] == rung["position_bits"] and free["rate_weight"] == rung["rate_weight"]
    assert free["palette_size"] == math.floor(16384 * rung["palette_scale"])
    held = target.rung_settings(base, rung, {"position_bits", "palette_size"})
    assert held["position_bits"] == 15 and held["palette_size"] == 16384
    assert target.rung_settings({**base, "palette_size": 0}, rung, set())["palette_size"] == 0


def test_ladder_gets_coarser_rung_by_rung():
    for earlier, later in zip(target.LADDER[:-1], target.LADDER[1:], strict=True):
        assert later["position_bits"] <= earlier["position_bits"]
        assert later["rate_weight"] >= earlier["rate_weight"]
        assert later["palette_scale"] <= earlier["palette_scale"]
        assert later != earlier


OPTIONS = dict(layout="bundle", device="cpu", preset="fast", iterations=2, quality_check="fast")


@pytest.fixture(scope="module")
def scene():
    return generate_scene(3000, sh_degree=1, seed=11)


def test_reachable_target_gives_a_smaller_file_that_meets_it(scene, tmp_path):
    plain = compress_splats(scene, tmp_path / "plain", "s", CompressOptions(**OPTIONS))
    goal = plain.quality["score"]["psnr_content"] - 3.0
    tuned = compress_splats(scene, tmp_path / "tuned", "s", CompressOptions(**OPTIONS, target_psnr=goal))
    report = tuned.quality["target"]
    assert report["met"] is True and report["psnr_content"] == goal
    # The final quality check (same cameras) confirms what the search measured for the chosen rung: the lowest
    # per-kind mean content PSNR (orbit and interior views each meet the goal).
    final = tuned.quality["score"]["psnr_content"]
    assert final == min(kind["psnr_content"]["mean"] for kind in tuned.quality["by_kind"].values())
    assert final >= goal and final == pytest.approx(report["chosen"]["psnr_content"], abs=1e-3)
    assert tuned.output_bytes == report["chosen"]["bytes"]
    assert tuned.output_bytes < plain.output_bytes
    assert tuned.settings["target_psnr"] == goal
    assert 1 < len(report["tried"]) <= 4


def test_unreachable_target_keeps_the_most_exact_rung_and_says_so(scene, tmp_path):
    result = compress_splats(scene, tmp_path, "s", CompressOptions(**OPTIONS, target_psnr=99.0))
    report = result.quality["target"]
    assert report["met"] is False and report["chosen"]["rung"] == 0
    assert report["chosen"]["settings"]["position_bits"] == 16


def test_explicit_settings_stay_fixed_during_the_search(scene, tmp_path):
    result = compress_splats(scene, tmp_path, "s", CompressOptions(**OPTIONS, target_psnr=20.0, position_bits=16,
                                                                   palette_size=500))
    for tried in result.quality["target"]["tried"]:
        assert tried["settings"]["position_bits"] == 16 and tried["settings"]["palette_size"] == 500
    assert result.palette_size <= 500


@pytest.mark.parametrize("extra", [dict(verify=False), dict(quality_check="off"), dict(target_psnr=5.0)])
def test_target_needs_the_quality_check_and_a_sane_value(extra):
    options = {**OPTIONS, "target_psnr": 40.0, **extra}
    with pytest.raises(SogsError) as info:
        CompressOptions(**options).validate()
    assert info.value.exit_code == 2


def test_scene_with_nothing_to_see_keeps_the_preset_and_reports_why(tmp_path):
    splats = generate_scene(200, sh_degree=0, seed=2)
    splats.opacity_logits[:] = -40.0  # fully transparent: nothing renders
    result = compress_splats(splats, tmp_path, "s", CompressOptions(**OPTIONS, target_psnr=40.0))
    assert "error" in result.quality["target"] and result.quality["target"]["met"] is False
    assert result.output_bytes > 0
    assert np.isfinite(result.output_bytes)
