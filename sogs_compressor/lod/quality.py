"""The quality check per level of a Streamed SOG: each level rendered against the original scene from the distance
at which the PlayCanvas engine would show it.

A coarser level is only ever seen from further away, so measuring it from the quality check's orbit distance would
condemn a good pyramid; measuring it from anywhere would say nothing. The distance comes from the engine's own
rule. PlayCanvas 2.23.3 (``src/scene/gsplat-unified/gsplat-octree-instance.js`` ``evaluateNodeDistances`` and
``gsplat-budget-balancer.js`` ``GSplatBudgetBalancer.balance``; defaults from ``GSplatComponent`` and
``GSplatParams``) picks a level per leaf node of lod-meta.json's tree:

* the node's distance ``d`` is from the camera to the nearest point of the node's bound (each axis shrunk by
  ``lodDistanceShrink`` = 0.75 of how much its half-size exceeds the median node's), times the field-of-view
  scale ``min(tan(fovY / 2), tan(fovX / 2)) / tan(22.5 deg)`` (a 45-degree vertical view counts as is; a wider one
  shows the scene smaller, so it counts as further), times ``lodBehindPenalty`` (1.5) for nodes behind the camera,
  times the entity's scale (1 on our viewer page);
* the node shows level ``floor(1 + log_m(d / (s b)))``, clamped to the levels it has, with ``b`` =
  ``lodBaseDistance`` = 5 and ``m`` = ``lodMultiplier`` = 3. ``s`` is one scale for the whole scene, fitted to the
  splat budget: in the budget's ``limit`` mode ``s`` = 1 (the configured distances) unless the budget is exceeded;
  in the default ``target`` mode (``splatBudget`` 1,000,000) the largest ``s`` whose splats fit, so every node
  shows level 0 when level 0 fits in the budget, and all distances shrink alike when it does not.

With ``s`` = 1 that is level 0 for ``d`` < 5, level ``L`` for 5 x 3^(L-1) <= ``d`` < 5 x 3^L, and the coarsest
level from its lower edge on. Each level is measured at ``level_distance(L)`` = ``b m^(L-1)``: the nearest distance
at which the engine shows it, where it takes over from the finer level and its errors are largest on screen. Level
0, shown from any distance below ``b``, gets the same formula's ``b / m`` (the ladder continued one step inward).

The cameras are the orbit views' (azimuths spread evenly, elevations 20 and 45 degrees, 50-degree vertical field of
view, looking at the centre of the scene's robust box), each moved along its direction until the nearest point of
the robust box is ``level_distance(L)`` / the field-of-view scale away. The robust box (2nd-98th percentile of the
centres, what the orbit views frame) stands in for the nearest node's bound: the engine would show the nearest
content in view at level ``L`` and everything behind it at ``L`` or coarser, so rendering all of level ``L`` from
there is the level at its worst. The original is the full input (level 0, every SH band), rendered once from every
level's cameras.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from sogs_compressor.render.camera import Camera, look_at, orbit_frame, robust_bounds
from sogs_compressor.render.errors import RenderError
from sogs_compressor.render.quality import MODES, quality_check, render_views
from sogs_compressor.splats import SplatSet
from sogs_compressor.splats_torch import SplatTensors

LOD_BASE_DISTANCE = 5.0
"""The engine's default ``lodBaseDistance`` (world units): level 0 ends here."""

LOD_MULTIPLIER = 3.0
"""The engine's default ``lodMultiplier``: each level is shown from this many times further than the one before."""

REFERENCE_TAN_HALF_FOV = math.tan(math.radians(22.5))
"""The engine measures distances as seen through a 45-degree vertical field of view (``REF_TAN_HALF_FOV``)."""

LEVEL_VIEWS = {"fast": 2, "full": 4}
"""Views per level by quality-check mode, at that mode's image size: a few, so the cost stays bounded
(levels x views x 2 renders)."""

FOV_Y_DEG = 50.0
"""Vertical field of view of the level views: the orbit views' and the viewer page's."""

ELEVATIONS_DEG = (20.0, 45.0)


def engine_level(distance: float, levels: int, base: float = LOD_BASE_DISTANCE,
                 multiplier: float = LOD_MULTIPLIER) -> int:
    """The level the engine shows a node at (field-of-view scaled) ``distance`` with ``s`` = 1 (see above)."""
    if distance <= 0.0:
        return 0
    band = math.floor(1.0 + math.log(distance / base) / math.log(multiplier) + 1e-9)  # 1e-9: the switch point itself
    return min(max(band, 0), levels - 1)


def level_distance(level: int, base: float = LOD_BASE_DISTANCE, multiplier: float = LOD_MULTIPLIER) -> float:
    """The nearest (field-of-view scaled) distance at which the engine shows ``level``: ``base x multiplier^(level
    - 1)``; for level 0 the same formula, ``base / multiplier``."""
    return base * multiplier ** (level - 1)


def fov_scale(camera: Camera) -> float:
    """The engine's field-of-view factor on distances for this camera: the narrower half-angle's tangent over
    tan(22.5 deg)."""
    return min(camera.height / (2.0 * camera.fy), camera.width / (2.0 * camera.fx)) / REFERENCE_TAN_HALF_FOV


def _box_distance(point: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    return float(np.linalg.norm(np.maximum(np.maximum(low - point, point - high), 0.0)))


def _stand_off(centre: np.ndarray, direction: np.ndarray, low: np.ndarray, high: np.ndarray, gap: float) -> float:
    """How far from ``centre`` along ``direction`` a point lies ``gap`` away from the box (the distance to a box
    that holds ``centre`` only grows along the ray, so bisection finds it)."""
    near, far = 0.0, gap + float(np.linalg.norm(high - low)) + 1e-9
    for _ in range(64):
        mid = (near + far) / 2.0
        near, far = (mid, far) if _box_distance(centre + mid * direction, low, high) < gap else (near, mid)
    return far


def level_cameras(positions, level: int, count: int, size: int, up: np.ndarray | str | None = None,
                  fov_y_deg: float = FOV_Y_DEG) -> tuple[list[Camera], float]:
    """``count`` orbit-direction views of the scene for ``level``, each standing where the engine's distance to the
    nearest content (the robust box) is ``level_distance(level)``; also the camera's own distance to that box."""
    frame = orbit_frame(positions, up)
    low, high = robust_bounds(positions)
    probe = look_at(frame.centre + frame.direction(0.0, 0.0), frame.centre, frame.up, size, size, fov_y_deg)
    gap = level_distance(level) / fov_scale(probe)
    cameras = []
    for i in range(count):
        azimuth, elevation = 360.0 * i / count, ELEVATIONS_DEG[i % len(ELEVATIONS_DEG)]
        direction = frame.direction(azimuth, elevation)
        eye = frame.centre + _stand_off(frame.centre, direction, low, high, gap) * direction
        name = f"level{level}-orbit-{i}-az{azimuth:.0f}-el{elevation:.0f}"
        cameras.append(look_at(eye, frame.centre, frame.up, size, size, fov_y_deg, name, "orbit"))
    return cameras, gap


def measure_levels(original: SplatSet, decode_level: Callable[[int], SplatSet | SplatTensors], levels: int, mode: str,
                   device: torch.device, progress: Callable[[float], None] | None = None) -> tuple[list[dict], dict]:
    """Render every level (``decode_level(L)``: level ``L`` as a viewer reads it) against ``original`` from that
    level's cameras: per level (in order) its distances and PSNR / content PSNR / SSIM over its views, and a
    description of the method for the report. A level whose cameras see nothing of the original gets ``error``."""
    started = time.perf_counter()
    views, size = LEVEL_VIEWS[mode], MODES[mode]["size"]
    placed = [level_cameras(original.positions, level, views, size) for level in range(levels)]
    steps = 2 * levels * views
    rendered = [0]

    def report(done: float) -> None:
        if progress is not None:
            progress(min(1.0, done / steps))

    def one_reference_view() -> None:
        rendered[0] += 1
        report(rendered[0])

    every = [camera for cameras, _ in placed for camera in cameras]
    reference = render_views(original, every, device, allow_empty=True, on_view=one_reference_view)
    entries = []
    for level, (cameras, gap) in enumerate(placed):
        entry = {"distance": round(level_distance(level), 6), "camera_distance": round(gap, 6), "views": views}
        done = (levels + level) * views
        try:
            measured = quality_check(original, decode_level(level), mode, device, cameras=cameras,
                                     reference=reference[level * views:(level + 1) * views],
                                     progress=lambda fraction, done=done: report(done + fraction * views))
        except RenderError as error:  # the level itself is fine; say why it has no numbers
            entry["error"] = str(error)
        else:
            summary = measured["summary"]
            entry.update({"psnr": summary["psnr"]["mean"], "psnr_worst": summary["psnr"]["worst"],
                          "psnr_content": summary["psnr_content"]["mean"],
                          "psnr_content_worst": summary["psnr_content"]["worst"], "ssim": summary["ssim"]["mean"]})
        entries.append(entry)
    method = {"mode": mode, "views_per_level": views, "size": size, "fov_y_deg": FOV_Y_DEG,
              "rule": {"engine": "PlayCanvas 2.23", "lod_base_distance": LOD_BASE_DISTANCE,
                       "lod_multiplier": LOD_MULTIPLIER,
                       "distance": "b x m^(L-1) (level 0: b / m) from the nearest point of the robust box, "
                                   "scaled by the engine's field-of-view factor"},
              "seconds": round(time.perf_counter() - started, 3)}
    return entries, method
