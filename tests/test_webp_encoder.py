"""The WebP encoders: each texture encoded from the moment it is submitted, the encodes in progress together
within a memory budget (one always runs), every texture decoding back to itself."""

from __future__ import annotations

import numpy as np
import pytest

from sogs_compressor.sog.webp import (
    MEMORY_RESERVE_BYTES,
    WORKING_BYTES_PER_PIXEL,
    WebpEncoder,
    decode_webp,
    uniform_effort,
)

SIDE = 256


def texture(seed: int) -> np.ndarray:
    """A texture with the structure of a real one (smooth ramps, some noise), not pure noise."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(SIDE), np.arange(SIDE)) // (1 + seed)
    image = np.stack([ramp, ramp.T, rng.integers(0, 8, (SIDE, SIDE)), np.full((SIDE, SIDE), 255)], axis=-1)
    return (image % 256).astype(np.uint8)


def spans(encoder: WebpEncoder) -> list[tuple[float, float]]:
    """(start, end) of each encode, round trip included, in seconds after the encoder was made."""
    return sorted((s["submitted_s"] + s["queued_s"], s["done_s"]) for s in encoder.stats.values())


def test_encodes_that_fit_one_at_a_time_run_one_at_a_time():
    one = WORKING_BYTES_PER_PIXEL * SIDE * SIDE
    encoder = WebpEncoder(uniform_effort(4, 50), max_workers=4, round_trip=True, memory_budget=one + one // 2)
    images = {f"t{i}.webp": texture(i) for i in range(4)}
    for name, image in images.items():
        encoder.submit(name, image)
    webps = encoder.results()
    assert list(webps) == list(images)
    for name, data in webps.items():
        np.testing.assert_array_equal(decode_webp(data), images[name])
    ordered = spans(encoder)
    assert all(end <= next_start for (_, end), (next_start, _) in zip(ordered, ordered[1:], strict=False))


def test_an_encode_larger_than_the_whole_budget_still_runs():
    encoder = WebpEncoder(uniform_effort(1, 0), max_workers=2, memory_budget=0)
    encoder.submit("a.webp", texture(1))
    encoder.submit("b.webp", texture(2))
    assert set(encoder.results()) == {"a.webp", "b.webp"}


@pytest.mark.parametrize("available, budget", [(5 << 30, (5 << 30) - MEMORY_RESERVE_BYTES), (1 << 20, 0),
                                               (None, None)])
def test_the_default_budget_is_what_is_available_less_a_reserve(monkeypatch, available, budget):
    monkeypatch.setattr("sogs_compressor.sog.webp.available_memory_bytes", lambda: available)
    encoder = WebpEncoder(uniform_effort(1, 0))
    assert encoder.memory_budget == budget
    encoder.submit("a.webp", texture(3))
    assert set(encoder.results()) == {"a.webp"}


def test_two_encoders_share_one_budget(monkeypatch):
    """A Streamed SOG has two chunks' encoders in flight: their encodes together stay within the budget."""
    import threading
    import time

    from sogs_compressor.sog import webp

    running, most = [0], [0]
    lock = threading.Lock()
    real_encode = webp.encode_webp

    def counted(image, method, quality):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.05)  # long enough that encodes admitted together would overlap
            return real_encode(image, method, quality)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(webp, "encode_webp", counted)
    one = WORKING_BYTES_PER_PIXEL * SIDE * SIDE
    first, second = (WebpEncoder(uniform_effort(1, 0), max_workers=2, memory_budget=one + one // 2)
                     for _ in range(2))
    for i in range(2):
        first.submit(f"a{i}.webp", texture(i))
        second.submit(f"b{i}.webp", texture(i + 2))
    assert len(first.results()) == 2 and len(second.results()) == 2
    assert most[0] == 1
    assert webp.ENCODE_MEMORY.held == 0
