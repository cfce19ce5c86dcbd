"""The codec's command-line flags, shared by ``sogs-compressor compress`` and the SageMaker job (``job``), and
how they overlay a ``CompressOptions``: one definition, so the job needs nothing from the CLI module."""

from __future__ import annotations

import argparse

from sogs_compressor.layouts import LAYOUT_NAMES, layout_help
from sogs_compressor.options import (
    INVALID_POLICIES,
    LOD_PALETTES,
    ORDERS,
    PALETTE_ORDERS,
    PALETTE_POLICIES,
    PRESETS,
    QUALITY_CHECKS,
    VIEWER_CHOICES,
    CompressOptions,
)


def add_codec_options(parser: argparse.ArgumentParser) -> None:
    """Codec flags shared by ``compress`` and ``job``."""
    parser.add_argument("--layout", choices=LAYOUT_NAMES, default=None, help=layout_help())
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
                        help="most position bits an opaque splat keeps, 8-16 (faint splats keep fewer, splats small "
                             "next to the grid's cell more)")
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
