"""``sogs-compressor render`` and ``sogs-compressor compare``: look at any scene, measure any pair."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sogs_compressor.render.camera import (
    DEFAULT_UP,
    Camera,
    check_size,
    find_cameras_json,
    load_cameras_json,
    look_at,
    orbit_cameras,
    parse_floats,
    parse_up,
    select_cameras,
)
from sogs_compressor.render.errors import CameraSpecError

RENDER_ORBIT_VIEWS = 8
RENDER_INTERIOR_VIEWS = 8
DEFAULT_RENDER_SIZE = 512


def _background(text: str | None) -> tuple[float, float, float]:
    if not text:
        return (0.0, 0.0, 0.0)
    values = parse_floats(text, 3, "--background")
    if not all(0.0 <= v <= 1.0 for v in values):
        raise CameraSpecError(f"--background {text!r}: expected three numbers in 0..1")
    return tuple(float(v) for v in values)


def _training_cameras(args: argparse.Namespace, scene_path: str) -> tuple[list[Camera] | None, str | None]:
    """Cameras from --cameras FILE or a cameras.json beside the scene (None when there are none)."""
    path = Path(args.cameras) if args.cameras else find_cameras_json(scene_path)
    if path is None:
        return None, None
    return load_cameras_json(path), str(path)


def _render_camera(args: argparse.Namespace, splats) -> Camera:
    """The one camera ``render`` uses: --camera, else view N of the training cameras or of the orbit rig."""
    if args.size is not None:
        check_size(*args.size)
    width, height = args.size or (DEFAULT_RENDER_SIZE, DEFAULT_RENDER_SIZE)
    if args.camera:
        values = parse_floats(args.camera, (6, 7), "--camera")
        fov = float(values[6]) if values.size == 7 else 50.0
        return look_at(values[:3], values[3:6], parse_up(args.up), width, height, fov, "custom")
    view = 0 if args.view is None else args.view
    cameras, _ = _training_cameras(args, args.input) if not args.interior else (None, None)
    if cameras is not None:
        cameras = select_cameras(cameras, len(cameras))
    elif args.interior:
        from sogs_compressor.render.interior import interior_cameras

        cameras = interior_cameras(splats, RENDER_INTERIOR_VIEWS, width, height, args.up or DEFAULT_UP)
    else:
        cameras = orbit_cameras(splats.positions, RENDER_ORBIT_VIEWS, width, height, args.up or DEFAULT_UP)
    if not 0 <= view < len(cameras):
        raise CameraSpecError(f"--view {view} is out of range: there are {len(cameras)} views (0..{len(cameras) - 1})")
    camera = cameras[view]
    if args.size is None:
        return camera.fit_long_side(DEFAULT_RENDER_SIZE)
    return camera.resized(width, height)


def _save_image(image, path: Path) -> None:
    from PIL import Image

    from sogs_compressor.errors import OutputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pil = Image.fromarray(image)
        if path.suffix.lower() == ".webp":
            pil.save(path, format="WEBP", lossless=True)
        else:
            pil.save(path, format="PNG")
    except (OSError, ValueError) as error:
        raise OutputError(f"cannot write image {path}: {error}") from None


def _cmd_render(args: argparse.Namespace) -> int:
    from sogs_compressor.device import resolve_device
    from sogs_compressor.read import read_one_level
    from sogs_compressor.render.rasterize import prepare, render, to_uint8

    if args.camera and args.view is not None:
        raise CameraSpecError("give either --camera or --view, not both")
    started = time.perf_counter()
    device = resolve_device(args.device)
    scene = read_one_level(args.input)
    camera = _render_camera(args, scene.splats)
    result = render(prepare(scene.splats, device), camera, _background(args.background))
    out = Path(args.output)
    _save_image(to_uint8(result.image), out)
    if not args.quiet:
        print(f"wrote {out}: {camera.width}x{camera.height}, camera {camera.name}, "
              f"{result.visible} of {scene.splats.count} splats visible, {time.perf_counter() - started:.2f} s")
    return 0


def _compare_cameras(args: argparse.Namespace, splats) -> tuple[list[Camera], str]:
    """Orbit and interior views of the original, plus its training cameras when there are some."""
    from sogs_compressor.render.quality import describe_source, plan_cameras, view_plan

    plan = view_plan(args.mode, args.views, args.size, interior=args.interior, training=args.training)
    training, source = _training_cameras(args, args.original)
    cameras = plan_cameras(splats, plan, args.up, training)
    return cameras, describe_source(cameras, source)


def _print_quality(report: dict, preview: Path | None) -> None:
    print(f"{'view':>4}  {'kind':<9} {'camera':<28} {'PSNR dB':>8} {'content':>8} {'SSIM':>7}")

    def row(label: str, kind: str, camera: str, psnr: float, content: float | None, ssim: float) -> None:
        content = "-" if content is None else f"{content:.2f}"
        print(f"{label:>4}  {kind[:9]:<9} {camera[:28]:<28} {psnr:>8.2f} {content:>8} {ssim:>7.4f}")

    for v in report["views"]:
        row(str(v["index"]), v["kind"], v["camera"], v["psnr"], v["psnr_content"], v["ssim"])
    groups = [("all", report["summary"], len(report["views"])),
              *((kind, s, s["views"]) for kind, s in report["by_kind"].items())]
    for kind, s, count in groups:
        for label in ("mean", "worst"):
            row(label, kind, f"({count} views)", s["psnr"][label], s["psnr_content"][label], s["ssim"][label])
    score = report["score"]["psnr_content"]
    print(f"score (lowest per-kind mean content PSNR): {'-' if score is None else f'{score:.2f} dB'}")
    if preview is not None:
        print(f"preview: {preview}")


def _cmd_compare(args: argparse.Namespace) -> int:
    from sogs_compressor.device import resolve_device
    from sogs_compressor.progress import close, command_progress
    from sogs_compressor.read import input_path, read_scene
    from sogs_compressor.read.registry import sniff_format
    from sogs_compressor.render.quality import quality_check

    device = resolve_device(args.device)

    def level_of(path: str) -> int | None:  # a Streamed SOG's levels overlap: one at a time, level 0 by default
        return (0 if args.lod is None else args.lod) if sniff_format(input_path(path)).levels else None

    if args.lod is not None and level_of(args.original) is None and level_of(args.compressed) is None:
        from sogs_compressor.errors import UsageError

        raise UsageError(f"--lod {args.lod}: neither scene is a Streamed SOG (lod-meta.json)")
    original = read_scene(args.original, level_of(args.original))
    compressed = read_scene(args.compressed, level_of(args.compressed))
    cameras, source = _compare_cameras(args, original.splats)
    preview = Path(args.preview) if args.preview else None
    progress = command_progress(args.quiet, scene=str(args.compressed))
    try:
        report = quality_check(
            original.splats, compressed.splats, args.mode, device, cameras, preview,
            background=_background(args.background), camera_source=source,
            progress=lambda fraction: progress("compare", fraction),
        )
    finally:
        close(progress)
    report = {
        "original": {"path": str(args.original), "format": original.format, "bytes": original.bytes,
                     "splats": original.splats.count},
        "compressed": {"path": str(args.compressed), "format": compressed.format, "bytes": compressed.bytes,
                       "splats": compressed.splats.count},
        "quality": report,
        "preview": None if preview is None else str(preview),
    }
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=False))
    elif not args.quiet:
        _print_quality(report["quality"], preview)
    return 0


def _add_view_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--up", default=None, metavar="AXIS",
                   help="world direction shown upwards: -y (default, most trained scenes), +y, +z, -z, ... or X,Y,Z")
    p.add_argument("--cameras", default=None, metavar="FILE",
                   help="3DGS training cameras.json (default: one beside the input, if present)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: $SOGS_DEVICE or auto)")
    p.add_argument("--background", default=None, metavar="R,G,B", help="background colour in 0..1 (default: black)")


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``render`` and ``compare`` to the CLI."""
    p = subparsers.add_parser("render", parents=[common], help="render one view of a scene to PNG",
                              description="Render a scene (PLY, compressed PLY, SOG) with the reference rasterizer.")
    p.add_argument("input", metavar="FILE")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png", help="PNG (or .webp, lossless)")
    p.add_argument("--camera", default=None, metavar="EX,EY,EZ,TX,TY,TZ[,FOV]",
                   help="camera at eye E looking at target T (vertical field of view in degrees, default 50)")
    p.add_argument("--view", type=int, default=None, metavar="N",
                   help=f"view N of the training cameras, or of {RENDER_ORBIT_VIEWS} orbit views (default 0)")
    p.add_argument("--interior", action="store_true",
                   help=f"--view N of {RENDER_INTERIOR_VIEWS} views from inside the scene looking outward")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("W", "H"),
                   help=f"image size (default {DEFAULT_RENDER_SIZE} on the long side)")
    _add_view_options(p)
    p.set_defaults(handler=_cmd_render)

    p = subparsers.add_parser("compare", parents=[common], help="rendered PSNR/SSIM between two scenes",
                              description="Render two scenes from the same cameras and measure the difference.")
    p.add_argument("original", metavar="ORIGINAL")
    p.add_argument("compressed", metavar="COMPRESSED")
    p.add_argument("--mode", choices=("fast", "full"), default="fast",
                   help="fast: 2 orbit + 2 interior (+ 2 training) views at 256 px; full: 8 + 4 (+ 4) at 512 px")
    p.add_argument("--views", type=int, default=None, metavar="N", help="orbit views (overrides --mode)")
    p.add_argument("--interior", type=int, default=None, metavar="N",
                   help="views from inside the scene looking outward (overrides --mode)")
    p.add_argument("--training", type=int, default=None, metavar="N",
                   help="training cameras used, when there is a cameras.json (overrides --mode)")
    p.add_argument("--size", type=int, default=None, metavar="S", help="image size in pixels (overrides --mode)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--preview", default=None, metavar="OUT.png", help="write the labelled preview grid here")
    p.add_argument("--lod", type=int, default=None, metavar="N",
                   help="of a Streamed SOG (lod-meta.json), compare level N (default 0, the finest; -1 the coarsest)")
    _add_view_options(p)
    p.set_defaults(handler=_cmd_compare)
