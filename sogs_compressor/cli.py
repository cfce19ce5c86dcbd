"""Command-line interface: ``sogs-compressor compress|decompress|info|...``.

Every failure a user can act on is one line on stderr and a documented exit code (see ``errors.EXIT_CODES``);
only a bug prints a traceback, and only with ``-v``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from sogs_compressor import __version__
from sogs_compressor.errors import Interrupted, SogsError, exit_code_table
from sogs_compressor.options import (
    INVALID_POLICIES,
    LAYOUTS,
    LOD_PALETTES,
    ORDERS,
    PALETTE_ORDERS,
    PALETTE_POLICIES,
    PRESETS,
    QUALITY_CHECKS,
    VIEWER_CHOICES,
    CompressOptions,
)

# Feature modules that add their own subcommands: each has ``register(subparsers)``.
PLUGIN_COMMANDS = (
    "sogs_compressor.job.cli",
    "sogs_compressor.render.cli",
    "sogs_compressor.launch",
    "sogs_compressor.demo",
    "sogs_compressor.lod.cli",
)
BUILT_IN_COMMANDS = ("compress", "decompress", "info")
"""Commands this module defines itself."""


def add_codec_options(parser: argparse.ArgumentParser) -> None:
    """Codec flags shared by ``compress`` and ``job``."""
    parser.add_argument("--layout", choices=LAYOUTS, default=None,
                        help="output layout: bundle, dir, both (default) or lod (a Streamed SOG: lod-meta.json + "
                             "chunk SOGs, levels of detail)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: $SOGS_DEVICE or auto)")
    parser.add_argument("--sh-bands", type=int, default=None, metavar="N", help="cap the SH degree written (0-3)")
    parser.add_argument("--iterations", type=int, default=None, metavar="N", help="k-means iterations for the SH palette")
    parser.add_argument("--palette-size", type=int, default=None, metavar="K", help="SH palette entries (1-65536)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (same seed, same output bytes)")
    parser.add_argument("--invalid", choices=INVALID_POLICIES, default=None,
                        help="splats with NaN/Inf values: drop and count them (default) or fail")
    parser.add_argument("--order", choices=ORDERS, default=None, help="splat order (default: by preset)")
    parser.add_argument("--preset", choices=PRESETS, default=None, help="speed/size trade-off (default: balanced)")
    parser.add_argument("--webp-method", type=int, default=None, metavar="M", help="lossless WebP method 0-6")
    parser.add_argument("--rate-weight", type=float, default=None, metavar="W",
                        help="scale/colour codebooks trade W x the squared error for fewer bits (0 = exact-as-possible)")
    parser.add_argument("--palette-rate-weight", type=float, default=None, metavar="W",
                        help="the same trade for the SH palette's centroid codebook (0 = MSE-optimal)")
    parser.add_argument("--position-bits", type=int, default=None, metavar="B",
                        help="position precision of opaque splats, 8-16 (faint splats keep 1-2 fewer)")
    parser.add_argument("--target-psnr", type=float, default=None, metavar="DB",
                        help="smallest output whose rendered content PSNR is at least DB (searches position bits, "
                             "rate weights and palette size; a few encodes)")
    parser.add_argument("--palette", choices=PALETTE_POLICIES, default=None,
                        help="SH palette size policy: st = splat-transform's rule (default), auto = one per 8 splats")
    parser.add_argument("--palette-order", choices=PALETTE_ORDERS, default=None,
                        help="SH palette entry order (default auto: first-use for small palettes' scenes, else frequency)")
    parser.add_argument("--quality-check", choices=QUALITY_CHECKS, default=None,
                        help="render original and output and compare them (PSNR/SSIM + preview); default fast")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip decoding our output (no attribute errors, no quality check)")
    parser.add_argument("--viewer", choices=VIEWER_CHOICES, default=None,
                        help="write NAME.html beside the SOG: the scene in the PlayCanvas engine with the report's "
                             "numbers; serve the folder over http to open it (default: on)")
    parser.add_argument("--viewer-engine", default=None, metavar="URL",
                        help="where the page loads the PlayCanvas engine's playcanvas.min.js from (default: a "
                             "pinned jsDelivr URL); absolute, or relative to the page")
    parser.add_argument("--lod-levels", type=int, default=None, metavar="N",
                        help="--layout lod: at most N levels, each half the one before (default 5)")
    parser.add_argument("--lod-min-splats", type=int, default=None, metavar="N",
                        help="--layout lod: no level below N splats (default 16384; with --lod-levels alone: 1)")
    parser.add_argument("--lod-chunk-count", type=int, default=None, metavar="K",
                        help="--layout lod: about K x 1024 splats per chunk file (default 512, as splat-transform)")
    parser.add_argument("--lod-chunk-extent", type=float, default=None, metavar="U",
                        help="--layout lod: split chunks wider than U world units (default 16, as splat-transform)")
    parser.add_argument("--lod-chunk-min", type=int, default=None, metavar="K",
                        help="--layout lod: ... unless they hold K x 1024 splats or fewer (default 8)")
    parser.add_argument("--lod-palette", choices=LOD_PALETTES, default=None,
                        help="--layout lod: cluster the SH palette per chunk (chunk, default: best picture for its "
                             "bytes) or once per level (level: faster; each chunk keeps the entries it uses)")
    parser.add_argument("--no-error-bound", action="store_true",
                        help="let codebooks move single splats past the per-splat tolerances (tolerances.py) for "
                             "slightly smaller files; the reports still count them")


CODEC_OPTION_FIELDS = (
    "layout", "device", "sh_bands", "iterations", "palette_size", "seed", "invalid", "order", "preset",
    "webp_method", "quality_check", "rate_weight", "palette_rate_weight", "position_bits", "target_psnr", "palette",
    "palette_order", "viewer", "viewer_engine", "lod_levels", "lod_min_splats", "lod_chunk_count",
    "lod_chunk_extent", "lod_chunk_min", "lod_palette",
)
"""CompressOptions fields set by the codec flags of the same (argparse) name."""


def options_from_args(args: argparse.Namespace, base: CompressOptions | None = None) -> CompressOptions:
    """Overlay the flags that were given on ``base`` (flags left out keep base's value)."""
    opts = base or CompressOptions()
    for name in CODEC_OPTION_FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            setattr(opts, name, value)
    if getattr(args, "no_error_bound", False):
        opts.error_bound = False
    if getattr(args, "no_verify", False):
        opts.verify = False
        opts.quality_check = "off"
    return opts.validate()


def _cmd_compress(args: argparse.Namespace) -> int:
    from sogs_compressor.output_target import plan_outputs
    from sogs_compressor.prefetch import ScenePrefetch

    as_levels = args.lod_input == "levels"  # the inputs are one scene's levels: one output
    plans, layout = plan_outputs(args.output, args.inputs[:1] if as_levels else args.inputs, args.layout)
    args.layout = layout
    options = options_from_args(args)
    if as_levels:
        from sogs_compressor.lod.pyramid import check_level_inputs

        check_level_inputs(options, len(args.inputs))
    if args.cameras:  # a given cameras.json must be usable: checked before any scene is read (exit 3)
        from sogs_compressor.render.camera import load_cameras_json

        load_cameras_json(args.cameras)
        options.cameras = args.cameras
    # The first scene is read while torch loads; a single input that fails at once fails before torch loads. The
    # levels of one scene are all needed: all are read at once, and any that fails at once fails the run.
    first = ScenePrefetch(args.inputs[0])
    levels = [first, *map(ScenePrefetch, args.inputs[1:])] if as_levels else None
    for prefetch in levels or ([first] if len(args.inputs) == 1 else []):
        if (error := prefetch.early_failure()) is not None:
            if levels is not None:
                from sogs_compressor.lod.pyramid import naming_the_file

                raise naming_the_file(error, prefetch.path)
            raise error

    from sogs_compressor import progress as progress_module
    from sogs_compressor.pipeline import compress_file
    from sogs_compressor.summary import human_summary

    results, failures = [], []
    for index, plan in enumerate(plans):
        progress = progress_module.command_progress(args.quiet, scene=plan.input)
        options.name = plan.name
        try:
            if levels is not None:
                from sogs_compressor.lod.streamed import compress_levels

                results.append(compress_levels(args.inputs, plan.folder, options, progress=progress,
                                               prefetched=levels))
            else:
                results.append(compress_file(plan.input, plan.folder, options, progress=progress,
                                             prefetched=first if index == 0 else None, placement=plan.placement))
        except Interrupted:
            raise
        except SogsError as error:
            if len(plans) == 1:
                raise
            failures.append((plan.input, error))
            print(f"error: {plan.input}: {error}", file=sys.stderr)
        finally:
            progress_module.close(progress)
    if args.json:
        payload = [r.to_dict() for r in results]
        print(json.dumps(payload[0] if len(plans) == 1 else payload, indent=2, allow_nan=False))
    elif not args.quiet:
        for result in results:
            print(human_summary(result))
    if failures:
        return max(error.exit_code for _, error in failures)
    return 0


def _cmd_decompress(args: argparse.Namespace) -> int:
    from sogs_compressor.read import read_scene
    from sogs_compressor.write.ply import write_ply

    scene = read_scene(args.input, args.lod)
    write_ply(scene.splats, args.output)
    if not args.quiet:
        print(f"wrote {args.output}: {scene.splats.count} splats, SH degree {scene.splats.sh_degree}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from sogs_compressor.read import describe_scene

    info = describe_scene(args.input, args.lod)
    if args.json:
        print(json.dumps(info, indent=2, allow_nan=False))
    else:
        for key, value in info.items():
            print(f"{key:>14}: {value}")
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``command`` one of ``BUILT_IN_COMMANDS`` the plugin commands are left out:
    importing them (the job's modules) cost ~0.2 s before a compress could start reading (bench/RESULTS.md)."""
    parser = argparse.ArgumentParser(
        prog="sogs-compressor",
        description="Compress 3D Gaussian Splatting scenes into PlayCanvas SOG (and back).",
        epilog="exit codes:\n" + exit_code_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sogs-compressor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    common.add_argument("-v", "--verbose", action="store_true", help="show details (and tracebacks of bugs)")

    p = sub.add_parser("compress", parents=[common], help="PLY / compressed PLY / SOG -> SOG v2",
                       epilog="exit codes:\n" + exit_code_table(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="IN",
                   help="scene files (.ply, .compressed.ply, .sog, meta.json); with --lod-input levels, one scene's "
                        "levels, finest first")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output folder; or, with one input, the .sog file (layout bundle) or the meta.json (layout "
                        "dir) to write")
    add_codec_options(p)
    p.add_argument("--lod-input", choices=("scene", "levels"), default="scene",
                   help="--layout lod: each input is a scene whose levels are made by decimation (scene, default), "
                        "or the inputs are one scene's levels 0..N-1, finest first, written as given (levels)")
    p.add_argument("--cameras", default=None, metavar="FILE",
                   help="3DGS training cameras.json whose views the quality check adds (default: one beside the input)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_cmd_compress)

    p = sub.add_parser("decompress", parents=[common], help="SOG (or any supported scene) -> standard 3DGS PLY")
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--output", required=True, metavar="OUT.ply")
    p.add_argument("--lod", type=int, default=None, metavar="N",
                   help="of a Streamed SOG (lod-meta.json), level N only (default: all levels; -1 the coarsest)")
    p.set_defaults(handler=_cmd_decompress)

    p = sub.add_parser("info", parents=[common], help="counts, SH degree, bounding box and format of a scene")
    p.add_argument("input", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.add_argument("--lod", type=int, default=None, metavar="N",
                   help="of a Streamed SOG (lod-meta.json), level N only (default: all levels)")
    p.set_defaults(handler=_cmd_info)

    for module_name in PLUGIN_COMMANDS if command not in BUILT_IN_COMMANDS else ():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((arg for arg in argv if not arg.startswith("-")), None))
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except Interrupted as error:  # the watchdog may be writing the same line
        from sogs_compressor.interrupt import report_once

        report_once(f"error: {error}")
        return error.exit_code
    except SogsError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of host memory", file=sys.stderr)
        return 1
    except Exception as error:  # a bug: one line unless -v
        if getattr(args, "verbose", False):
            raise
        print(f"error: internal error: {type(error).__name__}: {error} (rerun with -v for details)", file=sys.stderr)
        return 1


def run() -> None:
    """The process entry point (``sogs-compressor``, ``python -m sogs_compressor``): signals handled, and the
    process ended with ``main``'s exit code without library teardown (``interrupt.hard_exit``)."""
    from sogs_compressor import interrupt

    interrupt.install()
    interrupt.hard_exit(main())
