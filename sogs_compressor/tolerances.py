"""The per-splat error bound: how far any one decoded splat may be from its original (issue 15).

Averages (RMSE, medians) hide a few hundred splats decoded 16x too large: a rate-aware, render-weighted codebook
gives faint, tiny floaters no entry of their own, so they share one meant for larger splats. Tools downstream
(selection by size, LOD merging, voxelisers, our own streaming) see every splat, so every splat is bounded.
The codebooks enforce the scale and colour bounds (``quantize/bound.py``); opacity, rotation and position are
bounded by their fixed-point encodings, with the position grid never coarser than ``MIN_POSITION_BITS``. The
verifier measures every one of them (``verify/metrics.py``), and reports count the splats beyond each.
"""

from __future__ import annotations

SCALE_GROWTH = 0.25
"""Largest growth of any axis, in log-scale units (decoded - original <= this; e^0.25 = 1.28x). Growth is what
adds overdraw and haze and what size-based tools trip on. Our codebooks' error on clean scenes is at most
~0.08 (bench/SIZE.md, "Per-splat error bound"), so the bound only moves the splats that were far off."""

SCALE_SHRINK = 1.0
"""Largest shrink of any axis, in log-scale units (original - decoded <= this; e-fold). Shrinking a faint splat is
benign, so this is looser than ``SCALE_GROWTH``; it keeps the bound from sending a grown splat to an entry far
below it (an opaque detail splat shrunk 10x would vanish)."""

F_DC = 0.1
"""Largest error of any DC colour coefficient (f_dc, either way): 0.1 x SH_C0 = 0.028 of the colour range
(~7/255 per channel), so no splat changes its base colour visibly; clean scenes stay under ~0.03."""

OPACITY_GROWTH = 1.0 / 255.0
"""Largest growth of opacity, in alpha (decoded - original <= one 8-bit step). Alpha, not the logit: alpha is
what compositing multiplies by, so an alpha error is the pixel error, and the format stores alpha in 8 bits
(rounded: error <= 0.5/255). In logit space the faintest splats (alpha < 2/255) would count as far off for
the rounding the format itself imposes."""

ROTATION_DEG = 1.5
"""Largest angle between the original and decoded orientations, in degrees. The 8-bit smallest-three encoding
errs by at most ~1.1 degrees (three components within 0.5/255 x sqrt 2, the fourth derived); measured max
0.99 over 2M random rotations."""

MIN_POSITION_BITS = 10
"""Coarsest position grid a splat is ever rounded to (bits of the format's 16-bit grid, per axis): faint splats
keep fewer bits than opaque ones (``codebook_rd.position_bits``), never fewer than this."""

POSITION_CELLS = 2 ** (16 - MIN_POSITION_BITS - 1) + 1.0
"""Largest position error per axis, in cells of the 16-bit grid in the format's log space (the per-axis range
over 65,535): half a cell of the ``MIN_POSITION_BITS`` grid (32) plus the 16-bit rounding and float slack. The
log transform is the format's, so world-space error grows with distance from the origin; the grid is the unit
the format itself guarantees."""


def as_dict() -> dict:
    """The tolerances, for reports."""
    return {
        "log_scale_growth": SCALE_GROWTH,
        "log_scale_shrink": SCALE_SHRINK,
        "f_dc": F_DC,
        "opacity_growth": OPACITY_GROWTH,
        "rotation_deg": ROTATION_DEG,
        "position_cells": POSITION_CELLS,
    }
