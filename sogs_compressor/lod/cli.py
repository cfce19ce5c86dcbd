"""``sogs-compressor decimate IN -o OUT.ply --to N|P%``: any scene to a PLY with fewer, merged splats."""

from __future__ import annotations

import argparse
import math
import re
import time

from sogs_compressor.errors import SogsError

_COUNT = re.compile(r"^\s*(\d+)\s*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


def usage_error(message: str) -> SogsError:
    """A one-line usage error (exit 2), as the other commands report bad flag values."""
    error = SogsError(message)
    error.exit_code = 2
    error.kind = "usage"
    return error


def parse_target(text: str) -> tuple[int | None, float | None]:
    """``--to`` as (count, None) for ``N`` or (None, percent) for ``P%``; a usage error otherwise."""
    if match := _COUNT.match(text):
        count = int(match.group(1))
        if count < 1:
            raise usage_error(f"--to {text!r}: the splat count must be at least 1")
        return count, None
    if match := _PERCENT.match(text):
        percent = float(match.group(1))
        if not 0.0 < percent <= 100.0:
            raise usage_error(f"--to {text!r}: the percentage must be in (0, 100]")
        return None, percent
    raise usage_error(f"--to {text!r}: expected a splat count N or a percentage P% of the input")


def target_count(text: str, input_count: int) -> int:
    """The number of splats ``--to`` asks for, given the input's count (a percentage rounds, and keeps >= 1)."""
    count, percent = parse_target(text)
    if count is None:
        return max(1, min(input_count, math.floor(input_count * percent / 100.0 + 0.5)))
    if count > input_count:
        raise usage_error(f"--to {count}: the input has only {input_count} splats")
    return count


def _cmd_decimate(args: argparse.Namespace) -> int:
    parse_target(args.to)  # a bad --to fails before the input is read
    if not args.output.lower().endswith(".ply"):
        raise usage_error(f"-o {args.output!r}: decimate writes a standard 3DGS PLY (OUT.ply)")

    from sogs_compressor.read import read_one_level
    from sogs_compressor.read.sanitize import sanitize

    splats, report = sanitize(read_one_level(args.input).splats, "drop")
    target = target_count(args.to, splats.count)

    from sogs_compressor.device import out_of_memory_as, resolve_device
    from sogs_compressor.lod.decimate import decimate
    from sogs_compressor.write.ply import write_ply

    device = resolve_device(args.device)
    started = time.perf_counter()
    rounds: list[int] = []
    with out_of_memory_as(device, "decimation"):
        result = decimate(splats, target, device=device, seed=args.seed, on_round=lambda r, _b, _a: rounds.append(r))
    seconds = time.perf_counter() - started
    write_ply(result, args.output)
    if not args.quiet:
        dropped = f" ({report.total_dropped} invalid dropped first)" if report.total_dropped else ""
        print(f"wrote {args.output}: {splats.count} -> {result.count} splats{dropped} in {len(rounds)} rounds, "
              f"{seconds:.2f} s on {device}")
    return 0


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add ``decimate`` to the CLI."""
    p = subparsers.add_parser(
        "decimate", parents=[common], help="fewer splats: merge neighbouring pairs down to N or P%%",
        description="Reduce a scene (PLY, compressed PLY, SOG) to N splats, or P%% of them, by merging "
                    "neighbouring pairs by moment matching (cheapest merges first); writes a standard 3DGS PLY.",
    )
    p.add_argument("input", metavar="IN")
    p.add_argument("-o", "--output", required=True, metavar="OUT.ply")
    p.add_argument("--to", required=True, metavar="N|P%", help="splats to keep: a count, or a percentage of the input (e.g. 50%%)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: $SOGS_DEVICE or auto)")
    p.add_argument("--seed", type=int, default=0, help="random seed (ties between equal merges; same seed, same output)")
    p.set_defaults(handler=_cmd_decimate)
