"""The quality section of a compression report: how much the picture changed, in numbers and a preview.

Both scenes are rendered by the reference rasterizer from the same cameras (orbit views around the
original's robust bounding box unless cameras are given) and compared with PSNR (whole / content) and SSIM.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sogs_compressor.device import device_name, resolve_device
from sogs_compressor.render.camera import DEFAULT_UP, Camera, orbit_cameras
from sogs_compressor.render.errors import CameraSpecError, NothingVisibleError
from sogs_compressor.render.metrics import CONTENT_ALPHA, PSNR_CAP_DB, compare_images, summarize
from sogs_compressor.render.preview import DIFF_GAIN, write_preview
from sogs_compressor.render.rasterize import RENDERER_SETTINGS, RenderResult, prepare, render, to_uint8
from sogs_compressor.splats import SplatSet

MODES = {
    "fast": {"views": 4, "size": 256},
    "full": {"views": 8, "size": 512},
}
"""``fast``: 8 renders of 256x256 (cheap on a GPU at 1M splats, seconds on a CPU at 100K);
``full``: 16 renders of 512x512."""
QUALITY_MODES = ("off", *MODES)
MAX_VIEWS = 64
PREVIEW_ROWS = 4


def mode_settings(mode: str, views: int | None = None, size: int | None = None) -> tuple[int, int]:
    """(views, size) of a mode, with explicit overrides checked."""
    if mode not in MODES:
        raise CameraSpecError(f"quality mode must be one of {', '.join(QUALITY_MODES)}, not {mode!r}")
    views = MODES[mode]["views"] if views is None else int(views)
    size = MODES[mode]["size"] if size is None else int(size)
    if not 1 <= views <= MAX_VIEWS:
        raise CameraSpecError(f"--views must be 1..{MAX_VIEWS}, not {views}")
    if not 16 <= size <= 4096:
        raise CameraSpecError(f"--size must be 16..4096 pixels, not {size}")
    return views, size


def default_cameras(splats: SplatSet, mode: str = "fast", views: int | None = None, size: int | None = None,
                    up: str | None = None) -> list[Camera]:
    """The orbit cameras a quality check uses for ``splats`` when none are given."""
    views, size = mode_settings(mode, views, size)
    return orbit_cameras(splats.positions, views, size, size, up or DEFAULT_UP)


def render_views(splats: SplatSet, cameras: list[Camera], device: torch.device,
                 background: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 allow_empty: bool = False, on_view: Callable[[], None] | None = None) -> list[RenderResult]:
    """Render ``splats`` from every camera (prepare once). Keep the result to compare many candidates
    against the same original renders (``quality_check(..., reference=...)``). ``on_view()`` is called after
    each view."""
    g = prepare(splats, device)
    results = []
    for cam in cameras:
        results.append(render(g, cam, background, allow_empty=allow_empty))
        if on_view is not None:
            on_view()
    return results


def _preview_rows(cameras, originals, compressed, views) -> list[tuple[np.ndarray, np.ndarray, str]]:
    picks = sorted(set(np.round(np.linspace(0, len(cameras) - 1, min(PREVIEW_ROWS, len(cameras)))).astype(int)))
    rows = []
    for i in picks:
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
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    reference: list[RenderResult] | None = None,
    camera_source: str | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict:
    """Render both scenes from the same cameras and measure the difference; JSON-safe dict.

    mode: ``fast`` / ``full`` (``off`` returns ``{"mode": "off"}`` and renders nothing).
    cameras: use these (already sized) instead of orbit views around ``original``.
    preview_path: also write the labelled preview PNG there; its file name goes in the dict.
    reference: renders of ``original`` from ``cameras`` made earlier (skips rendering it again).
    progress(fraction): the share of the renders (and the preview) done, after each one.
    """
    if mode == "off":
        return {"mode": "off"}
    started = time.perf_counter()
    device = device or resolve_device(None)
    if cameras is None:
        cameras = default_cameras(original, mode, views, size, up)
        camera_source = camera_source or "orbit"
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
        entry = {"index": i, "camera": cam.name}
        entry.update(compare_images(a.image, b.image, a.alpha, b.alpha))
        per_view.append(entry)
    preview_name = None
    if preview_path is not None:
        preview_path = Path(preview_path)
        write_preview(_preview_rows(cameras, reference, rendered, per_view), preview_path)
        preview_name = preview_path.name
        step()
    return {
        "mode": mode,
        "summary": summarize(per_view),
        "views": per_view,
        "size": [cameras[0].width, cameras[0].height],
        "cameras": {"source": camera_source or "given", "count": len(cameras),
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
