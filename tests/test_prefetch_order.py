"""The Morton order computed beside the read (``prefetch.ScenePrefetch``): the pipeline takes it when it is ready
and the splats are the read's (nothing dropped), and the output is byte-identical to ordering in the pipeline."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from plyfiles import random_splats, write_ply_variant

from sogs_compressor.options import CompressOptions
from sogs_compressor.pipeline import compress_file
from sogs_compressor.prefetch import ScenePrefetch, morton_wanted


def _ready(prefetch: ScenePrefetch, timeout_s: float = 60.0) -> tuple[np.ndarray, float]:
    """Wait for the background order without taking it (``take_order`` gives up on an order not yet done)."""
    deadline = time.monotonic() + timeout_s
    while not prefetch._order.done():
        assert time.monotonic() < deadline, "the background order never finished"
        time.sleep(0.01)
    ready = prefetch.take_order()
    assert ready is not None
    return ready


def _compress(path: Path, out: Path, prefetch: ScenePrefetch | None) -> tuple[dict, bytes]:
    options = CompressOptions(device="cpu", quality_check="off", layout="bundle")
    result = compress_file(path, out, options, prefetched=prefetch)
    return result.timings, (out / f"{path.stem}.sog").read_bytes()


def test_the_pipeline_takes_the_ready_order_with_the_same_bytes(tmp_path: Path) -> None:
    splats = random_splats(3000, sh_degree=1, seed=11)
    path = write_ply_variant(tmp_path / "scene.ply", splats)
    prefetch = ScenePrefetch(path, morton=True)
    permutation, seconds = _ready(prefetch)
    assert sorted(permutation.tolist()) == list(range(3000)) and seconds >= 0
    timings, taken = _compress(path, tmp_path / "taken", prefetch)
    assert timings["order_background"] == seconds
    plain_timings, plain = _compress(path, tmp_path / "plain", None)
    assert "order_background" not in plain_timings
    assert taken == plain


def test_splats_dropped_by_the_sanitizer_are_ordered_in_the_pipeline(tmp_path: Path) -> None:
    splats = random_splats(2000, seed=12)
    splats.positions[5, 1] = np.nan  # dropped: the read's order is not these splats' order
    path = write_ply_variant(tmp_path / "scene.ply", splats)
    prefetch = ScenePrefetch(path, morton=True)
    _ready(prefetch)
    timings, taken = _compress(path, tmp_path / "taken", prefetch)
    assert "order_background" not in timings
    assert taken == _compress(path, tmp_path / "plain", None)[1]


def test_no_background_order_unless_asked(tmp_path: Path) -> None:
    path = write_ply_variant(tmp_path / "scene.ply", random_splats(500, seed=13))
    prefetch = ScenePrefetch(path)
    prefetch.result()
    time.sleep(0.05)
    assert prefetch.take_order() is None


def test_an_order_taken_before_it_is_done_stops(tmp_path: Path) -> None:
    """The order stage that finds no order ready orders on the device: the host's work stops at its next pass."""
    from sogs_compressor.order.morton import morton_order_host

    rng = np.random.default_rng(14)
    positions = np.concatenate([rng.normal(scale=1e-6, size=(2500, 3)), 1 + rng.normal(scale=1e-6, size=(2500, 3)),
                                [[100.0, 100.0, 100.0]]]).astype(np.float32)  # two clumps: a second pass is needed
    asked = []

    def stop_after_the_first_pass() -> bool:
        asked.append(1)
        return len(asked) > 1

    assert morton_order_host(positions, stop_after_the_first_pass) is None
    assert len(asked) == 2
    assert morton_order_host(positions, lambda: False) is not None


def test_morton_is_wanted_for_the_single_file_layouts_with_the_morton_order() -> None:
    assert morton_wanted(None, "bundle") and morton_wanted("morton", "dir") and morton_wanted(None, None)
    assert not morton_wanted("plas", "bundle")
    assert not morton_wanted(None, "lod") and not morton_wanted(None, "no-such-layout")
