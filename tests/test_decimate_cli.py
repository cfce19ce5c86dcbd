"""``sogs-compressor decimate`` as a user runs it: a real subprocess, real files, the README's exit codes."""

from __future__ import annotations

import pytest

from sogs_compressor.read import read_scene
from sogs_compressor.sample import generate_scene
from sogs_compressor.write.ply import write_ply
from tests.clirun import COMPRESS_ADDRESS_SPACE, assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def scene_ply(tmp_path_factory):
    path = tmp_path_factory.mktemp("decimate") / "scene.ply"
    write_ply(generate_scene(1500, sh_degree=1, seed=2), path)
    return path


@pytest.mark.parametrize("to, expected", [("40%", 600), ("1000", 1000)])
def test_decimate_writes_a_ply_with_the_asked_count(scene_ply, tmp_path, to, expected):
    out = tmp_path / "out.ply"
    run = run_cli(["decimate", str(scene_ply), "-o", str(out), "--to", to, "--device", "cpu", "--seed", "3"],
                  address_space=COMPRESS_ADDRESS_SPACE)
    assert run.returncode == 0, run.stderr
    assert f"1500 -> {expected} splats" in run.stdout
    splats = read_scene(out).splats
    assert splats.count == expected and splats.sh_degree == 1


@pytest.mark.parametrize("to, words", [
    ("abc", ("--to", "expected a splat count")),
    ("0", ("at least 1",)),
    ("150%", ("(0, 100]",)),
    ("=-5%", ("expected a splat count",)),
    ("2000", ("only 1500 splats",)),
])
def test_bad_to_is_a_one_line_usage_error(scene_ply, tmp_path, to, words):
    out = tmp_path / "out.ply"
    flag = ["--to" + to] if to.startswith("=") else ["--to", to]  # "--to=-5%": argparse reads "-5%" as a flag
    run = run_cli(["decimate", str(scene_ply), "-o", str(out), *flag, "--device", "cpu"],
                  address_space=COMPRESS_ADDRESS_SPACE)
    assert_one_line_error(run, 2, *words)
    assert not out.exists()


def test_missing_input_and_non_ply_output(scene_ply, tmp_path):
    run = run_cli(["decimate", str(tmp_path / "missing.ply"), "-o", str(tmp_path / "o.ply"), "--to", "10"],
                  address_space=COMPRESS_ADDRESS_SPACE)
    assert_one_line_error(run, 3, "missing.ply")
    run = run_cli(["decimate", str(scene_ply), "-o", str(tmp_path / "o.sog"), "--to", "10"],
                  address_space=COMPRESS_ADDRESS_SPACE)
    assert_one_line_error(run, 2, "PLY")
