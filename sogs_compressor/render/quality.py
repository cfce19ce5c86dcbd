"""The quality section of a compression report: how much the picture changed, in numbers and a preview.

Both scenes are rendered by the reference rasterizer from the same cameras (unless cameras are given: orbit views
around the original's robust bounding box, views from inside it looking outward, and the training cameras when
there are some) and compared with PSNR (whole / content) and SSIM, per view, over all views and per view kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from sogs_compressor.device import device_name, resolve_device
from sogs_compressor.render.camera import DEFAULT_UP, Camera, orbit_cameras, select_cameras
from sogs_compressor.render.errors import CameraSpecError, NothingVisibleError
from sogs_compressor.render.interior import interior_cameras
from sogs_compressor.render.metrics import CONTENT_ALPHA, PSNR_CAP_DB, compare_images, summarize
from sogs_compressor.render.preview import DIFF_GAIN, write_preview
from sogs_compressor.render.rasterize import RENDERER_SETTINGS, RenderResult, prepare, render, to_uint8
from sogs_compressor.splats import SplatSet
from sogs_compressor.splats_torch import SplatTensors

VIEW_KINDS = ("orbit", "interior", "training")
"""Orbit views look at the scene from outside its box, interior views from inside it looking outward
(``interior.py``), training views are the capture's own cameras (a 3DGS ``cameras.json``, when there is one)."""

MODES = {
    "fast": {"orbit": 2, "interior": 2, "training": 2, "size": 256},
    "full": {"orbit": 8, "interior": 4, "training": 4, "size": 512},
}
"""Views of each kind and their size. ``fast`` (run on every compress) keeps the 4 renders per scene it had
with 4 orbit views (2 orbit + 2 interior; +2 training when a cameras.json is found); ``full`` 12 (16) at 512 px.
bench/RESULTS.md, "Views from inside the scene", has what each costs."""
QUALITY_MODES = ("off", *MODES)
MAX_VIEWS = 64
PREVIEW_ROWS = 4


@dataclass(frozen=True)
class ViewPlan:
    """How many views of each kind a quality check renders, and their size in pixels (long side)."""

    orbit: int
    interior: int
    training: int
    size: int

    def to_dict(self) -> dict:
        return {"orbit": self.orbit, "interior": self.interior, "training": self.training, "size": self.size}


def view_plan(mode: str, views: int | None = None, size: int | None = None, *, interior: int | None = None,
              training: int | None = None) -> ViewPlan:
    """A mode's plan, with explicit overrides checked (``views`` = orbit views, as before interior views)."""
    if mode not in MODES:
        raise CameraSpecError(f"quality mode must be one of {', '.join(QUALITY_MODES)}, not {mode!r}")
    counts = {"orbit": views, "interior": interior, "training": training}
    for flag, (kind, value) in zip(("--views", "--interior", "--training"), counts.items(), strict=True):
        counts[kind] = MODES[mode][kind] if value is None else int(value)
        if not 0 <= counts[kind] <= MAX_VIEWS:
            raise CameraSpecError(f"{flag} must be 0..{MAX_VIEWS}, not {counts[kind]}")
    if sum(counts.values()) == 0:
        raise CameraSpecError("at least one view is needed (--views / --interior / --training)")
    size = MODES[mode]["size"] if size is None else int(size)
    if not 16 <= size <= 4096:
        raise CameraSpecError(f"--size must be 16..4096 pixels, not {size}")
    return ViewPlan(counts["orbit"], counts["interior"], counts["training"], size)


def plan_cameras(splats: SplatSet | SplatTensors, plan: ViewPlan, up: str | None = None,
                 training: list[Camera] | None = None) -> list[Camera]:
    """The plan's cameras: orbit views, then interior views (both from ``splats``), then an evenly spread
    subset of ``training`` (3DGS training cameras, if any) scaled to the plan's size."""
    up = up or DEFAULT_UP
    cameras = []
    if plan.orbit:
        cameras += orbit_cameras(splats.positions, plan.orbit, plan.size, plan.size, up)
    if plan.interior:
        cameras += interior_cameras(splats, plan.interior, plan.size, plan.size, up)
    if training and plan.training:
        cameras += [replace(c, kind="training").fit_long_side(plan.size) for c in select_cameras(training, plan.training)]
    if not cameras:
        raise CameraSpecError("no views to render: no orbit or interior views asked for, and no training cameras")
    return cameras


def default_cameras(splats: SplatSet | SplatTensors, mode: str = "fast", views: int | None = None,
                    size: int | None = None, up: str | None = None, *, interior: int | None = None) -> list[Camera]:
    """The cameras a quality check uses for ``splats`` when none are given and there are no training cameras."""
    return plan_cameras(splats, view_plan(mode, views, size, interior=interior), up)


def describe_source(cameras: list[Camera], training_file: str | Path | None = None) -> str:
    """What the report's ``cameras.source`` says: the kinds used, and the training cameras' file."""
    kinds = [kind for kind in (*VIEW_KINDS, "custom") if any(c.kind == kind for c in cameras)]
    text = "+".join(kinds) or "given"
    return f"{text} ({training_file})" if training_file and "training" in kinds else text


def by_kind(per_view: list[dict]) -> dict:
    """Per view kind present: the number of views and the mean / worst of each measure."""
    kinds = [kind for kind in (*VIEW_KINDS, "custom", "") if any(v["kind"] == kind for v in per_view)]
    return {kind or "unnamed": {"views": sum(v["kind"] == kind for v in per_view),
                                **summarize([v for v in per_view if v["kind"] == kind])} for kind in kinds}


def quality_score(report: dict) -> float | None:
    """The one number ``--target-psnr`` holds to its goal: the lowest, over the view kinds, of the mean content
    PSNR (so outside, inside and training views each meet it); None when no view has content."""
    means = [k["psnr_content"]["mean"] for k in (report.get("by_kind") or {}).values()]
    means = [m for m in means if m is not None]
    return min(means) if means else None


def render_views(splats: SplatSet | SplatTensors, cameras: list[Camera], device: torch.device,
                 background: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 allow_empty: bool = False, on_view: Callable[[], None] | None = None) -> list[RenderResult]:
    """Render ``splats`` from every camera (prepare once). Keep the result to compare many candidates
    against the same original renders (``quality_check(..., reference=...)``). ``on_view()`` is called after
    each view. A camera that repeats an earlier one's view (``same_view``: small scenes can place two interior
    views at one spot) shares its render instead of drawing it again."""
    g = prepare(splats, device)
    results: list[RenderResult] = []
    drawn: dict[tuple, RenderResult] = {}
    for cam in cameras:
        key = same_view(cam)
        if key not in drawn:
            drawn[key] = render(g, cam, background, allow_empty=allow_empty)
        results.append(drawn[key])
        if on_view is not None:
            on_view()
    return results


def same_view(camera: Camera) -> tuple:
    """What a render depends on: pose, intrinsics and size (not the camera's name or kind)."""
    return (camera.R, camera.t, camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height)


def _preview_picks(cameras: list[Camera]) -> list[int]:
    """Up to ``PREVIEW_ROWS`` views: the first of each kind, then evenly spread ones, in view order."""
    picks: list[int] = []
    for kind in dict.fromkeys(cam.kind for cam in cameras):
        picks.append(next(i for i, cam in enumerate(cameras) if cam.kind == kind))
    spread = np.round(np.linspace(0, len(cameras) - 1, min(PREVIEW_ROWS, len(cameras)))).astype(int)
    picks += [int(i) for i in spread if int(i) not in picks]
    return sorted(picks[:PREVIEW_ROWS])


def _preview_rows(cameras, originals, compressed, views) -> list[tuple[np.ndarray, np.ndarray, str]]:
    rows = []
    for i in _preview_picks(cameras):
        v = views[i]
        label = f"view {i} {cameras[i].name}: PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.4f}"
        rows.append((to_uint8(originals[i].image), to_uint8(compressed[i].image), label))
    return rows


def quality_check(
    original: SplatSet,
    compressed: SplatSet,
    mode: str = "fast",
    device: torch.device | None = None,
    cameras: list[Camera] | None = None,
    preview_path: Path | None = None,
    *,
    views: int | None = None,
    size: int | None = None,
    up: str | None = None,
    interior: int | None = None,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    reference: list[RenderResult] | None = None,
    camera_source: str | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict:
    """Render both scenes from the same cameras and measure the difference; JSON-safe dict.

    mode: ``fast`` / ``full`` (``off`` returns ``{"mode": "off"}`` and renders nothing).
    cameras: use these (already sized) instead of the mode's orbit and interior views of ``original``
    (``views`` orbit and ``interior`` interior views at ``size`` px override the mode's numbers).
    preview_path: also write the labelled preview PNG there; its file name goes in the dict.
    reference: renders of ``original`` from ``cameras`` made earlier (skips rendering it again).
    progress(fraction): the share of the renders (and the preview) done, after each one.
    """
    if mode == "off":
        return {"mode": "off"}
    started = time.perf_counter()
    device = device or resolve_device(None)
    if cameras is None:
        cameras = default_cameras(original, mode, views, size, up, interior=interior)
    elif not cameras:
        raise CameraSpecError("the list of cameras is empty")
    steps = len(cameras) * (1 if reference is not None else 2) + (1 if preview_path is not None else 0)
    done = [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0] / steps)

    if reference is None:
        reference = render_views(original, cameras, device, background, allow_empty=True, on_view=step)
    for cam, result in zip(cameras, reference, strict=True):
        if result.visible == 0:
            raise NothingVisibleError(
                f"the original scene shows nothing from camera {cam.name or '(unnamed)'}: every splat is behind "
                "it, outside the picture or transparent; check the cameras and --up"
            )
    rendered = render_views(compressed, cameras, device, background, allow_empty=True, on_view=step)
    per_view = []
    for i, (cam, a, b) in enumerate(zip(cameras, reference, rendered, strict=True)):
        entry = {"index": i, "camera": cam.name, "kind": cam.kind}
        entry.update(compare_images(a.image, b.image, a.alpha, b.alpha))
        per_view.append(entry)
    kinds = by_kind(per_view)
    preview_name = None
    if preview_path is not None:
        preview_path = Path(preview_path)
        write_preview(_preview_rows(cameras, reference, rendered, per_view), preview_path)
        preview_name = preview_path.name
        step()
    return {
        "mode": mode,
        "summary": summarize(per_view),
        "by_kind": kinds,
        "score": {"psnr_content": quality_score({"by_kind": kinds}),
                  "rule": "lowest per-kind mean content PSNR (what --target-psnr holds to its goal)"},
        "views": per_view,
        "size": [cameras[0].width, cameras[0].height],
        "cameras": {"source": camera_source or describe_source(cameras), "count": len(cameras),
                    "kinds": {kind: n["views"] for kind, n in kinds.items()},
                    "list": [cam.to_dict() for cam in cameras]},
        "renderer": {
            **RENDERER_SETTINGS,
            "background": list(background),
            "sh_degree": {"original": original.sh_degree, "compressed": compressed.sh_degree},
            "device": str(device),
            "device_name": device_name(device),
        },
        "metrics": {
            "psnr": f"dB over RGB in [0, 1], capped at {PSNR_CAP_DB:g} (identical images)",
            "psnr_content": f"PSNR over pixels with accumulated opacity >= {CONTENT_ALPHA} in either render",
            "ssim": "per RGB channel, averaged; Gaussian window 11, sigma 1.5; valid positions only",
            "preview_difference_gain": DIFF_GAIN,
        },
        "preview": preview_name,
        "seconds": round(time.perf_counter() - started, 3),
    }
