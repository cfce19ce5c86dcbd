"""The ``render`` and ``compare`` commands: a real subprocess for the happy paths, ``cli.main`` for errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from plyfiles import random_splats
from test_quality import write_cameras_json

from sogs_compressor.cli import main
from sogs_compressor.write.ply import write_ply


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sogs_compressor", *args], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])


def test_compare_command_json_and_preview(tmp_path: Path) -> None:
    scene = random_splats(300, 2, seed=4)
    write_ply(scene, tmp_path / "a.ply")
    write_ply(replace(scene, opacity_logits=scene.opacity_logits - 0.5), tmp_path / "b.ply")
    done = run_cli("compare", str(tmp_path / "a.ply"), str(tmp_path / "b.ply"), "--views", "2", "--interior", "1",
                   "--size", "40", "--json", "--preview", str(tmp_path / "prev.png"), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["original"]["splats"] == 300 and report["compressed"]["format"]
    quality = report["quality"]
    assert [v["kind"] for v in quality["views"]] == ["orbit", "orbit", "interior"] and quality["preview"] == "prev.png"
    assert 5.0 < quality["summary"]["psnr"]["mean"] < 100.0
    assert {kind: k["views"] for kind, k in quality["by_kind"].items()} == {"orbit": 2, "interior": 1}
    interior = quality["by_kind"]["interior"]["psnr_content"]["mean"]
    assert quality["score"]["psnr_content"] == min(interior, quality["by_kind"]["orbit"]["psnr_content"]["mean"])
    assert (tmp_path / "prev.png").is_file()


def test_compare_table_shows_each_view_kind(tmp_path: Path, capsys) -> None:
    scene = random_splats(200, 0, seed=7)
    write_ply(scene, tmp_path / "a.ply")
    write_ply(replace(scene, f_dc=scene.f_dc + 0.05), tmp_path / "b.ply")
    code = main(["compare", str(tmp_path / "a.ply"), str(tmp_path / "b.ply"), "--views", "1", "--interior", "2",
                 "--size", "32", "--device", "cpu"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines[1:4]] == ["orbit", "interior", "interior"]
    assert any(line.split()[:2] == ["mean", "interior"] and "(2 views)" in line for line in lines)
    assert any(line.split()[:2] == ["worst", "orbit"] for line in lines)
    assert lines[-1].startswith("score (lowest per-kind mean content PSNR): ")


def test_compare_uses_cameras_json_beside_the_original(tmp_path: Path, capsys) -> None:
    scene = random_splats(200, 0, seed=5)
    write_ply(scene, tmp_path / "a.ply")
    write_cameras_json(tmp_path / "cameras.json")
    code = main(["compare", str(tmp_path / "a.ply"), str(tmp_path / "a.ply"), "--views", "1", "--interior", "1",
                 "--training", "2", "--size", "32", "--json", "--device", "cpu"])
    assert code == 0
    quality = json.loads(capsys.readouterr().out)["quality"]
    assert quality["cameras"]["source"] == f"orbit+interior+training ({tmp_path / 'cameras.json'})"
    listed = quality["cameras"]["list"]
    assert [c["kind"] for c in listed] == ["orbit", "interior", "training", "training"]
    assert [c["name"] for c in listed[2:]] == ["img_000", "img_004"]
    assert [(c["width"], c["height"]) for c in listed] == [(32, 32), (32, 32), (32, 16), (32, 16)]
    assert quality["by_kind"]["training"]["views"] == 2 and quality["score"]["psnr_content"] == 100.0


def test_render_command_writes_png(tmp_path: Path) -> None:
    write_ply(random_splats(200, 1, seed=6), tmp_path / "a.ply")
    done = run_cli("render", str(tmp_path / "a.ply"), "-o", str(tmp_path / "out.png"), "--view", "3",
                   "--size", "40", "24", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (40, 24) and np.asarray(im).max() > 0


@pytest.mark.parametrize("extra,message", [
    (["--camera", "0,0,100,0,0,200"], "behind"),
    (["--cameras", "{bad}"], "is not an object"),
    (["--view", "99"], "out of range"),
    (["--camera", "1,2,3"], "expected 6 or 7"),
    (["--size", "0", "10"], "outside 1..8192"),
    (["--up", "0,0,0"], "not a usable direction"),
    (["--camera", "0,0,-5,0,0,0", "--view", "1"], "not both"),
])
def test_render_errors_are_one_line_with_exit_code_3(tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    write_ply(random_splats(50, 0, seed=7), tmp_path / "a.ply")
    (tmp_path / "bad.json").write_text("[1, 2]")
    extra = [e.replace("{bad}", str(tmp_path / "bad.json")) for e in extra]
    code = main(["render", str(tmp_path / "a.ply"), "-o", str(tmp_path / "x.png"), "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert code == 3, err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "x.png").exists()


def test_render_command_shows_a_view_from_inside(tmp_path: Path, capsys) -> None:
    write_ply(random_splats(300, 0, seed=8), tmp_path / "a.ply")
    code = main(["render", str(tmp_path / "a.ply"), "-o", str(tmp_path / "in.png"), "--interior", "--view", "5",
                 "--size", "32", "32", "--device", "cpu"])
    assert code == 0
    out = capsys.readouterr().out
    assert "camera interior-5-hd" in out and " 0 of 300 splats" not in out
