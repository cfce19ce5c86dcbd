"""What ``compress`` writes where, and what the commands show a person: real CLI subprocesses, real files."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import COMPRESS_ADDRESS_SPACE, assert_one_line_error, run_cli
from s3server import job_env, run_job

from sogs_compressor.layouts import layout_asked_by
from sogs_compressor.read.sog import read_sog
from sogs_compressor.sample import generate_scene
from sogs_compressor.units import human_bytes
from sogs_compressor.write.ply import write_ply

REPO = Path(__file__).resolve().parents[1]
ANSI = "\x1b["
BINARY_UNITS = re.compile(r"\d\s?(KiB|MiB|GiB|TiB)\b")
QUICK = ["--preset", "fast", "--device", "cpu", "--quality-check", "off"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scenes")
    paths = {"a": folder / "a.ply", "b": folder / "b.ply", "other_a": folder / "other" / "a.ply"}
    for path, count in zip(paths.values(), (900, 700, 500), strict=True):
        path.parent.mkdir(exist_ok=True)
        write_ply(generate_scene(count, sh_degree=1, seed=count), path)
    return paths


def compress(*args) -> subprocess.CompletedProcess:
    return run_cli(["compress", *map(str, args)], address_space=COMPRESS_ADDRESS_SPACE, timeout=180)


def plain_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "SOGS_PROGRESS_INTERVAL")}
    env.update(extra)
    return env


def test_output_ending_in_sog_is_the_bundle_and_progress_off_a_terminal_is_json_events(scenes, tmp_path):
    out = tmp_path / "made" / "garden.sog"
    proc = subprocess.run(
        [sys.executable, "-m", "sogs_compressor", "compress", str(scenes["a"]), "-o", str(out), "--preset", "fast",
         "--device", "cpu", "--quality-check", "fast"],
        capture_output=True, text=True, timeout=180, cwd=REPO, env=plain_env(SOGS_PROGRESS_INTERVAL="0"))
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and read_sog(out).splats.count == 900
    assert sorted(p.name for p in out.parent.iterdir()) == ["garden.html", "garden.preview.png", "garden.sog"]
    assert f"wrote {out}" in proc.stdout and f"preview: {out.parent / 'garden.preview.png'}" in proc.stdout
    sizes = f"(ply, {human_bytes(scenes['a'].stat().st_size)}) -> {human_bytes(out.stat().st_size)}"
    assert sizes in proc.stdout and not BINARY_UNITS.search(proc.stdout)  # one unit convention (units.py)

    assert ANSI not in proc.stderr and "\r" not in proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    assert {e["event"] for e in events} == {"progress"} and {e["scene"] for e in events} == {str(scenes["a"])}
    by_stage: dict[str, list[float]] = {}
    for event in events:
        by_stage.setdefault(event["stage"], []).append(event["percent"])
    for stage in ("kmeans", "quality", "webp"):
        steps = by_stage[stage]
        assert steps == sorted(steps) and steps[-1] == 100.0 and steps.count(100.0) == 1, (stage, steps)
        assert any(0 < p < 100 for p in steps), (stage, steps)  # within the stage, not only its ends


def test_output_ending_in_meta_json_is_the_folder_layout(scenes, tmp_path):
    meta = tmp_path / "site" / "meta.json"
    proc = subprocess.run([sys.executable, "-m", "sogs_compressor", "compress", str(scenes["b"]), "-o", str(meta),
                           *QUICK], capture_output=True, text=True, timeout=180, cwd=REPO, env=plain_env())
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # a short run off a terminal logs no progress
    assert meta.is_file() and not list(meta.parent.glob("*.sog"))
    assert read_sog(meta).splats.count == 700 and f"wrote {meta}" in proc.stdout


@pytest.mark.parametrize("args", [
    ["{a}", "{b}", "-o", "{tmp}/x.sog"],
    ["{a}", "{b}", "-o", "{tmp}/meta.json"],
    ["{a}", "-o", "{tmp}/x.sog", "--layout", "both"],
    ["{a}", "-o", "{tmp}/d/meta.json", "--layout", "bundle"],
    ["{a}", "{other_a}", "-o", "{tmp}/out"],
])
def test_contradictory_outputs_are_usage_errors(scenes, tmp_path, args):
    values = {"tmp": tmp_path, **scenes}
    proc = compress(*[arg.format(**values) for arg in args], *QUICK)
    assert_one_line_error(proc, 2)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_named_like_a_bundle_is_not_replaced(scenes, tmp_path):
    (tmp_path / "old.sog").mkdir()
    assert_one_line_error(compress(scenes["a"], "-o", tmp_path / "old.sog", *QUICK), 40, "old.sog", "'/'")
    assert list((tmp_path / "old.sog").iterdir()) == []


@pytest.mark.parametrize(("output", "layout"), [
    ("out.sog", "bundle"), ("d/OUT.SOG", "bundle"), ("out.sog/", None), (".sog", None), ("d/meta.json", "dir"),
    ("meta.json/", None), ("d/other.json", None), ("out", None), ("d/LOD-META.json", "lod"),
])
def test_the_layout_an_output_asks_for_follows_the_name(output, layout):
    asked = layout_asked_by(output)
    assert (asked.name if asked is not None else None) == layout


def test_several_inputs_get_a_folder_each(scenes, tmp_path):
    proc = compress(scenes["a"], scenes["b"], "-o", tmp_path, *QUICK, "--layout", "both")
    assert proc.returncode == 0, proc.stderr
    for name, count in (("a", 900), ("b", 700)):
        assert read_sog(tmp_path / name / "meta.json").splats.count == count
        assert read_sog(tmp_path / f"{name}.sog").splats.count == count
    assert not (tmp_path / "meta.json").exists()


def test_several_inputs_in_the_folder_layout_get_pages_that_load_their_own_folder(scenes, tmp_path):
    proc = compress(scenes["a"], scenes["b"], "-o", tmp_path, *QUICK, "--layout", "dir", "--viewer", "on")
    assert proc.returncode == 0, proc.stderr
    for name in ("a", "b"):
        page = (tmp_path / f"{name}.html").read_text()
        assert f'"src":"./{name}/meta.json"' in page


def test_terminal_gets_a_bar_redrawn_in_place_without_colour(scenes, tmp_path):
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "sogs_compressor", "compress", str(scenes["b"]), "-o",
                             str(tmp_path), *QUICK], stdout=subprocess.PIPE, stderr=slave, cwd=REPO, env=plain_env())
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    stdout = proc.communicate(timeout=180)[0].decode()
    assert proc.returncode == 0
    terminal = b"".join(chunks).decode()
    kmeans = [line for line in terminal.replace("\r\n", "\n").split("\n") if "kmeans" in line]
    assert len(kmeans) == 1 and kmeans[0].count("\r") >= 2 and "100.0%" in kmeans[0]  # one line, redrawn
    assert ANSI not in terminal and "ratio" in stdout


def test_job_sizes_use_decimal_units_and_console_logs_into_a_pipe_have_no_colour(scenes, tmp_path):
    input_bytes = scenes["a"].stat().st_size
    inputs, outputs = tmp_path / "in", tmp_path / "job"
    inputs.mkdir()
    (inputs / "a.ply").write_bytes(scenes["a"].read_bytes())
    job = run_job(["--input", str(inputs), "--output", str(outputs), "--opt-ml-root", str(tmp_path / "ml"),
                   *QUICK], job_env(LOG_FORMAT="console"))
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
    assert ANSI not in job.stdout and "scene_done" in job.stdout  # console logs into a pipe: no colour codes
    message = (tmp_path / "ml" / "output" / "message").read_text()
    scene_text = (outputs / "a" / "compression_report.txt").read_text()
    job_text = next(outputs.glob("job_report-*.txt")).read_text()
    assert f"{human_bytes(input_bytes)} -> " in message and f"input        a.ply  {human_bytes(input_bytes)}" \
        in scene_text and human_bytes(input_bytes) in job_text
    for text in (job.stdout, job.stderr, message, scene_text, job_text):
        assert not BINARY_UNITS.search(text), BINARY_UNITS.search(text)


def test_compare_prints_the_preview_path_written(scenes, tmp_path):
    preview = tmp_path / "deep" / "look.png"
    proc = run_cli(["compare", str(scenes["b"]), str(scenes["b"]), "--views", "1", "--size", "32", "--device",
                    "cpu", "--preview", str(preview)], address_space=COMPRESS_ADDRESS_SPACE, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert f"preview: {preview}\n" in proc.stdout and preview.is_file()
