"""``--target-psnr``: the smallest output whose rendered content PSNR still meets a target.

The size levers measured in bench/SIZE.md (position bits, the codebooks' rate weights, the SH palette's size)
are put on one ladder of rungs, from near-exact to small. A rung is judged the way a user would judge the file:
encode it, decode it with the real SOG reader, render it from the quality check's cameras and compare with the
original's renders (content PSNR, mean over views). Quality falls along the ladder, so a binary search finds the
last rung that meets the target in about log2(rungs) encodes. When not even the first (most exact) rung meets
it, that rung is used and the report says the target was missed.

Settings given explicitly (``--position-bits``, ``--rate-weight``, ``--palette-rate-weight``,
``--palette-size``) are held fixed on every rung; the search varies only the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

LADDER: tuple[dict, ...] = (
    # position_bits, rate weights, palette size as a fraction of the preset's (bench/SIZE.md, session 10)
    {"position_bits": 16, "rate_weight": 1.0, "palette_rate_weight": 0.0, "palette_scale": 1.0},
    {"position_bits": 15, "rate_weight": 2.0, "palette_rate_weight": 16.0, "palette_scale": 1.0},
    {"position_bits": 14, "rate_weight": 4.0, "palette_rate_weight": 32.0, "palette_scale": 1.0},
    {"position_bits": 14, "rate_weight": 4.0, "palette_rate_weight": 32.0, "palette_scale": 0.85},
    {"position_bits": 13, "rate_weight": 4.0, "palette_rate_weight": 32.0, "palette_scale": 0.75},
    {"position_bits": 13, "rate_weight": 8.0, "palette_rate_weight": 32.0, "palette_scale": 0.6},
    {"position_bits": 12, "rate_weight": 8.0, "palette_rate_weight": 32.0, "palette_scale": 0.5},
    {"position_bits": 12, "rate_weight": 16.0, "palette_rate_weight": 32.0, "palette_scale": 0.35},
)
"""Rungs from near-exact to small; each is at most as large as the one before on the bench scenes."""

SEARCHED = ("position_bits", "rate_weight", "palette_rate_weight", "palette_size")
"""Encoder settings a rung may set (unless given explicitly)."""


def rung_settings(base: dict, rung: dict, explicit: set[str]) -> dict:
    """``base`` encoder settings (``presets.encoder_settings``) with the rung's values where not explicit."""
    settings = dict(base)
    for key in ("position_bits", "rate_weight", "palette_rate_weight"):
        if key not in explicit:
            settings[key] = rung[key]
    if "palette_size" not in explicit and base["palette_size"] > 0:
        settings["palette_size"] = max(1, math.floor(base["palette_size"] * rung["palette_scale"]))
    return settings


@dataclass
class Probe:
    """One rung, encoded and measured."""

    rung: int
    settings: dict
    bytes: int
    psnr_content: float
    payload: object = field(default=None, repr=False)  # what the caller needs to write this rung's output

    def to_dict(self) -> dict:
        settings = {k: self.settings[k] for k in SEARCHED if k in self.settings}
        return {"rung": self.rung, "settings": settings, "bytes": self.bytes,
                "psnr_content": round(self.psnr_content, 4)}


def search(target_db: float, rungs: int, evaluate: Callable[[int], Probe]) -> tuple[Probe, dict[int, Probe]]:
    """(the chosen probe, every probe by rung): the last rung meeting ``target_db`` by binary search.

    Assumes the PSNR falls along the ladder; with none meeting the target, rung 0 is chosen.
    """
    if rungs < 1:
        raise ValueError("the ladder has no rungs")
    probes: dict[int, Probe] = {}

    def probe(rung: int) -> Probe:
        if rung not in probes:
            probes[rung] = evaluate(rung)
        return probes[rung]

    passing, failing = -1, rungs  # invariant: rungs <= passing meet the target (-1: none known), >= failing miss
    while failing - passing > 1:
        middle = (passing + failing) // 2
        if probe(middle).psnr_content >= target_db:
            passing = middle
        else:
            failing = middle
    return probe(max(passing, 0)), probes


def summary(target_db: float, chosen: Probe, probes: dict[int, Probe]) -> dict:
    """The report's ``target`` section."""
    return {
        "psnr_content": target_db,
        "met": chosen.psnr_content >= target_db,
        "chosen": chosen.to_dict(),
        "tried": [probes[r].to_dict() for r in sorted(probes)],
    }
