"""The stage mechanics (``stages.py``) and the single-file pipeline's sequence of named stages (``pipeline.py``)."""

from __future__ import annotations

import pytest
import torch

from sogs_compressor.errors import DeviceError, Interrupted
from sogs_compressor.options import CompressOptions
from sogs_compressor.pipeline import compress_file, compress_splats
from sogs_compressor.sample import generate_scene
from sogs_compressor.stages import StageRunner, stage
from sogs_compressor.write.ply import write_ply


class Recorder:
    """A progress callback that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def __call__(self, name: str, fraction: float) -> None:
        self.calls.append((name, fraction))

    def starts(self) -> list[str]:
        return [name for name, fraction in self.calls if fraction == 0.0]


@stage()
def doubled(value: int) -> int:
    return 2 * value


@stage()
def failing() -> None:
    raise ValueError("the stage's own failure")


@stage(progress="webp", checkpoint=False)
def webp_wait() -> str:
    return "waited"


@stage(progress=False, timed=False)
def untimed() -> None:
    """A stage whose work reports its own timings."""


@stage(out_of_memory="encoding")
def out_of_memory() -> None:
    raise torch.cuda.OutOfMemoryError("CUDA out of memory")


def test_a_stage_is_timed_and_reported_under_its_name():
    timings, progress = {}, Recorder()
    assert StageRunner(timings, progress)(doubled, 21) == 42
    assert list(timings) == ["doubled"] and timings["doubled"] >= 0.0
    assert progress.calls == [("doubled", 0.0), ("doubled", 1.0)]


def test_a_stage_that_raises_leaves_no_timing_and_propagates():
    timings, progress = {}, Recorder()
    with pytest.raises(ValueError, match="the stage's own failure"):
        StageRunner(timings, progress)(failing)
    assert timings == {}
    assert progress.calls == [("failing", 0.0)]  # started, never finished


def test_a_stop_raises_interrupted_before_the_stage_runs():
    ran, timings, progress = [], {}, Recorder()

    @stage()
    def work() -> None:
        ran.append(True)

    with pytest.raises(Interrupted, match="nothing was written"):
        StageRunner(timings, progress, should_stop=lambda: True)(work)
    assert ran == [] and timings == {} and progress.calls == []


def test_a_stage_without_a_checkpoint_runs_even_when_asked_to_stop():
    timings, progress = {}, Recorder()
    assert StageRunner(timings, progress, should_stop=lambda: True)(webp_wait) == "waited"
    assert list(timings) == ["webp_wait"]  # the timing key is the stage's name; its progress has its own
    assert progress.calls == [("webp", 0.0), ("webp", 1.0)]


def test_a_stage_can_report_neither_progress_nor_timing():
    timings, progress = {}, Recorder()
    StageRunner(timings, progress)(untimed)
    assert timings == {} and progress.calls == []


def test_out_of_memory_becomes_a_device_error_naming_the_stage_s_work():
    with pytest.raises(DeviceError, match="out of GPU memory on cpu during encoding"):
        StageRunner({}, device=torch.device("cpu"))(out_of_memory)
    with pytest.raises(ValueError, match="needs the runner's device"):
        StageRunner({})(out_of_memory)


PIPELINE_STAGES = ["read", "sanitize", "order"]
"""The stages before the encoder, whose own keys follow in an order its threads decide; then ``AFTER_ENCODE``."""
ENCODER_KEYS = {"quantize", "kmeans", "scales_codebook", "colors_codebook", "sh_codebook", "codebook_wait"}
AFTER_ENCODE = ["verify", "quality", "webp_wait", "write", "read_back", "viewer", "total"]


def test_a_small_compress_reports_its_stages_in_order(tmp_path):
    path = tmp_path / "room.ply"
    write_ply(generate_scene(2_000, sh_degree=1, seed=4), path)
    progress = Recorder()
    result = compress_file(path, tmp_path / "out", CompressOptions(device="cpu", iterations=2), progress=progress)
    keys = list(result.timings)
    encoder = keys[len(PIPELINE_STAGES):len(keys) - len(AFTER_ENCODE)]
    assert keys[:len(PIPELINE_STAGES)] == PIPELINE_STAGES and keys[-len(AFTER_ENCODE):] == AFTER_ENCODE
    assert set(encoder) == ENCODER_KEYS
    own = ["read", "order", "verify", "quality", "webp", "write"]  # the encoder reports its own between
    assert [name for name in progress.starts() if name in own] == own
    assert progress.starts().index("quantize") == own.index("order") + 1


def test_a_stop_after_the_quality_check_leaves_nothing_and_cancels_the_webp_encoders(tmp_path, monkeypatch):
    """The checkpoint before the WebP wait: the preview the quality check wrote goes, the encoders are cancelled."""
    from sogs_compressor.sog.webp import WebpEncoder

    cancelled, progress = [], Recorder()
    cancel = WebpEncoder.cancel
    monkeypatch.setattr(WebpEncoder, "cancel", lambda self: (cancelled.append(self), cancel(self)))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Interrupted):
        compress_splats(generate_scene(2_000, sh_degree=1, seed=5), out, "room",
                        CompressOptions(device="cpu", iterations=2, layout="both"), progress=progress,
                        should_stop=lambda: ("quality", 1.0) in progress.calls)
    assert progress.starts()[-1] == "quality" and "webp" not in progress.starts()
    assert len(cancelled) == 1
    assert list(out.iterdir()) == []
