"""Progress inside long stages, the terminal bar, the throttled log events, and when colour is written."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from plyfiles import random_splats

from sogs_compressor.job.log import configure_logging, get_logger
from sogs_compressor.job.scene_progress import ThrottledProgress
from sogs_compressor.progress import (
    ConsoleProgress,
    LogProgress,
    StageThrottle,
    command_progress,
    no_progress,
)
from sogs_compressor.quantize.kmeans import kmeans
from sogs_compressor.render.quality import quality_check
from sogs_compressor.sog.webp import WebpEncoder, uniform_effort
from sogs_compressor.terminal import colour_wanted

ANSI = "\x1b["


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_throttle_logs_one_event_per_interval_per_stage_and_the_end_of_long_stages():
    clock = FakeClock()
    events: list[dict] = []
    progress = LogProgress(events.append, interval=5.0, clock=clock)
    progress("read", 0.0)
    clock.now = 0.5
    progress("read", 1.0)  # short stage: silent
    clock.now = 1.0
    progress("kmeans", 0.0)
    for step in range(1, 121):  # 12 s of updates every 0.1 s
        clock.now = 1.0 + step * 0.1
        progress("kmeans", step / 120)
    progress("kmeans", 1.0)  # the stage's end reported again by its caller: logged once
    assert [e["stage"] for e in events] == ["kmeans"] * 3
    assert [e["percent"] for e in events[:2]] == [pytest.approx(41.7, abs=1), pytest.approx(83.3, abs=1)]
    assert all(e["eta_s"] > 0 for e in events[:2])
    assert events[-1] == {"stage": "kmeans", "percent": 100.0, "seconds": 12.0}
    clock.now = 30.0
    progress("kmeans", 0.0)  # the same stage run again starts afresh
    clock.now = 36.0
    progress("kmeans", 0.5)
    assert events[-1]["percent"] == 50.0 and progress.emitted == 4


def test_a_stage_without_steps_that_took_long_still_logs_its_end():
    clock = FakeClock()
    throttle = StageThrottle(5.0, clock)
    assert throttle.update("verify", 0.0) is None
    clock.now = 7.0
    assert throttle.update("verify", 1.0) == {"stage": "verify", "percent": 100.0, "seconds": 7.0}


def test_job_progress_events_carry_scene_stage_percent_and_eta():
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    clock = FakeClock()
    progress = ThrottledProgress("s.ply", interval=5.0, logger=get_logger(), clock=clock)
    for step in range(1, 101):
        clock.now = step * 0.1
        progress("kmeans", step / 200)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(events) == progress.emitted == 1
    assert events[0]["event"] == "progress" and events[0]["scene"] == "s.ply" and events[0]["stage"] == "kmeans"
    assert 0 < events[0]["percent"] < 100 and events[0]["eta_s"] > 0


def test_console_bar_redraws_in_place_and_keeps_one_line_per_stage():
    clock, stream = FakeClock(), FakeTty()
    bar = ConsoleProgress(stream, clock=clock)
    bar("read", 0.0)
    bar("read", 1.0)
    bar("quality", 0.0)
    for step in range(1, 21):
        clock.now = step * 0.05  # redraws at most every 0.1 s
        bar("quality", step / 20)
    bar("quality", 1.0)
    bar("write", 0.0)
    bar.close()  # a stage left open (a failure) still ends its line
    lines = stream.getvalue().split("\n")
    assert len(lines) == 4 and lines[-1] == ""
    quality = lines[1].split("\r")[1:]
    assert 8 <= len(quality) <= 12  # about one redraw per 0.1 s of 1 s, not one per step
    assert quality[-1].startswith("  quality    [########################] 100.0%  1.0s")
    percents = [float(line.split("]")[1].split("%")[0]) for line in quality]
    assert percents == sorted(percents) and len(set(percents)) == len(percents) and 0 < percents[1] < 100
    assert lines[2].strip().startswith("write") and ANSI not in stream.getvalue()


def test_commands_pick_bar_log_or_nothing():
    assert isinstance(command_progress(False, stream=FakeTty()), ConsoleProgress)
    assert isinstance(command_progress(False, stream=io.StringIO()), LogProgress)
    assert command_progress(True, stream=FakeTty()) is no_progress


def test_kmeans_reports_each_iteration():
    data = np.random.default_rng(3).normal(size=(3000, 9)).astype(np.float32)
    flat, hierarchical = [], []
    kmeans(data, 64, iterations=5, seed=1, method="flat", progress=flat.append)
    kmeans(data, 64, iterations=4, seed=1, method="hierarchical", progress=hierarchical.append)
    assert flat == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert hierarchical == sorted(hierarchical) and len(hierarchical) == 8 and hierarchical[-1] == 1.0


def test_quality_check_reports_each_render_and_the_preview(tmp_path):
    scene = random_splats(200, 1, seed=2)
    fractions: list[float] = []
    report = quality_check(scene, scene, "fast", torch.device("cpu"), preview_path=tmp_path / "p.png", views=3,
                           size=32, progress=fractions.append)
    steps = 2 * report["cameras"]["count"] + 1  # both scenes from every camera (orbit and interior), the preview
    assert report["cameras"]["count"] >= 3
    assert fractions == pytest.approx([k / steps for k in range(1, steps + 1)])


def test_webp_results_report_each_texture():
    encoder = WebpEncoder(uniform_effort(0, 0), max_workers=2)
    for index in range(4):
        encoder.submit(f"t{index}.webp", np.full((8, 8, 4), index, np.uint8))
    fractions: list[float] = []
    assert list(encoder.results(fractions.append)) == [f"t{index}.webp" for index in range(4)]
    assert fractions == [0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize(("env", "tty", "wanted"), [
    ({}, True, True), ({}, False, False), ({"NO_COLOR": "1"}, True, False), ({"NO_COLOR": ""}, True, True),
    ({"FORCE_COLOR": "1"}, False, True), ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False, False),
    ({"TERM": "dumb"}, True, False),
])
def test_colour_rule(env, tty, wanted):
    assert colour_wanted(FakeTty() if tty else io.StringIO(), env) is wanted


@pytest.mark.parametrize(("env", "tty", "coloured"), [
    ({}, False, False), ({}, True, True), ({"NO_COLOR": "1"}, True, False), ({"FORCE_COLOR": "1"}, False, True),
])
def test_console_logs_are_coloured_only_where_wanted(monkeypatch, env, tty, coloured):
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stream = FakeTty() if tty else io.StringIO()
    configure_logging("INFO", "console", stream)
    get_logger("t").info("scene_done", scene="a.ply")
    assert "scene_done" in stream.getvalue() and (ANSI in stream.getvalue()) is coloured
