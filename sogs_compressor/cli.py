"""Command-line interface: ``sogs-compressor compress|decompress|info|...``.

Every failure a user can act on is one line on stderr and a documented exit code (see ``errors.EXIT_CODES``);
only a bug prints a traceback, and only with ``-v``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from sogs_compressor import __version__
from sogs_compressor.codec_args import add_codec_options, options_from_args
from sogs_compressor.errors import EXIT_OUTPUT_CLOSED, Interrupted, SogsError, exit_code_table
from sogs_compressor.read.registry import scene_file_names, suffix_list

BUILT_IN_COMMANDS = ("compress", "decompress", "info")
"""Commands this module defines itself."""


def _cmd_compress(args: argparse.Namespace) -> int:
    from sogs_compressor.output_target import plan_outputs
    from sogs_compressor.prefetch import ScenePrefetch, morton_wanted

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
    first = ScenePrefetch(args.inputs[0], morton=not as_levels and morton_wanted(options.order, options.layout))
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


def add_feature_commands(sub, common: argparse.ArgumentParser) -> None:
    """The subcommands of the feature modules, each added by the module's ``register(subparsers, common)``: the
    job, render and compare, launch, demo and decimate."""
    from sogs_compressor import demo, launch
    from sogs_compressor.job import cli as job_cli
    from sogs_compressor.lod import cli as lod_cli
    from sogs_compressor.render import cli as render_cli

    for module in (job_cli, render_cli, launch, demo, lod_cli):
        module.register(sub, common)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``command`` one of ``BUILT_IN_COMMANDS`` the feature commands are left out:
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
                   help=f"scene files ({suffix_list()}, {', '.join(scene_file_names())}); with --lod-input levels, "
                        "one scene's levels, finest first")
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

    if command not in BUILT_IN_COMMANDS:
        add_feature_commands(sub, common)
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
        from sogs_compressor.interrupt import silence_stdout, stdout_reader_gone

        if isinstance(error, BrokenPipeError) and stdout_reader_gone():  # `... | head` stopped reading: not a bug
            silence_stdout()
            return EXIT_OUTPUT_CLOSED
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
