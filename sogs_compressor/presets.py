"""Speed/size presets: what ``--preset fast|balanced|max`` fills in for settings left unset.

The numbers come from the measurements in bench/SIZE.md and bench/RESULTS.md: WebP effort dominates the CPU
time; more k-means iterations buy little after ~10; the rate weight of the codebooks (quantize/codebook_rd.py)
spends the rendered-quality headroom our rounding and MSE-optimal codebooks give on fewer bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from sogs_compressor.options import CompressOptions
from sogs_compressor.quantize.palette import palette_size
from sogs_compressor.sog.webp import Effort, uniform_effort


@dataclass(frozen=True)
class Preset:
    webp_method: int
    webp_quality: int
    iterations: int
    order: str
    rate_weight: float
    palette_rate_weight: float
    position_bits: int


PRESETS = {
    # fast: cheapest WebP effort that is not larger than splat-transform's output (bench/SIZE.md section 4)
    "fast": Preset(webp_method=2, webp_quality=25, iterations=5, order="morton", rate_weight=2.0,
                   palette_rate_weight=16.0, position_bits=15),
    # balanced: smaller than splat-transform while each attribute stays about as exact as its output
    "balanced": Preset(webp_method=4, webp_quality=50, iterations=10, order="morton", rate_weight=2.0,
                       palette_rate_weight=16.0, position_bits=15),
    # max: smallest files; spends more of the rendered-quality headroom (still above splat-transform's PSNR)
    "max": Preset(webp_method=5, webp_quality=90, iterations=20, order="morton", rate_weight=4.0,
                  palette_rate_weight=32.0, position_bits=14),
}


WEBP_EFFORT: dict[str, dict[str, tuple[int, int]]] = {
    "fast": {"means_l.webp": (3, 0), "means_u.webp": (2, 0), "quats.webp": (4, 0)},
    "balanced": {"means_l.webp": (3, 0), "means_u.webp": (3, 50), "quats.webp": (4, 0), "scales.webp": (3, 50),
                 "sh0.webp": (2, 50)},
    "max": {},
}
"""Per preset, the (method, quality) of the textures whose lossless WebP is better served by another effort
than the preset's (``Preset.webp_method`` / ``webp_quality``): the same bytes (within 0.02%) in less time, from
every texture encoded at 34 efforts on tiled real scenes (bench/RESULTS.md, "WebP effort per texture";
``bench/webp_sweep.py``). ``max`` keeps one effort for all: not re-measured at its own settings yet."""


def webp_effort(options: CompressOptions) -> Effort:
    """Each texture's WebP (method, quality) for ``options`` (before ``resolve``): an explicit ``webp_method`` or
    ``webp_quality`` applies to every texture; otherwise the preset's table, its defaults elsewhere."""
    preset = PRESETS[options.preset]
    method = preset.webp_method if options.webp_method is None else options.webp_method
    quality = preset.webp_quality if options.webp_quality is None else options.webp_quality
    if options.webp_method is not None or options.webp_quality is not None:
        return uniform_effort(method, quality)
    table = WEBP_EFFORT[options.preset]
    return lambda name: table.get(name, (method, quality))


def resolve(options: CompressOptions) -> CompressOptions:
    """A copy of ``options`` with every None setting filled from its preset."""
    preset = PRESETS[options.preset]
    filled = {f.name: getattr(preset, f.name) for f in fields(Preset) if getattr(options, f.name) is None}
    return replace(options, **filled)


def encoder_settings(options: CompressOptions, count: int) -> dict:
    """Keyword arguments of ``encode_sog`` that come from resolved ``options`` for a scene of ``count`` splats:
    the SH palette size (explicit ``palette_size``, else the ``palette`` policy's), its order, the rate weights,
    the position bits and the per-splat error bound."""
    return {
        "palette_size": options.palette_size or palette_size(count, options.palette),
        "palette_order": options.palette_order,
        "rate_weight": float(options.rate_weight or 0.0),
        "palette_rate_weight": float(options.palette_rate_weight or 0.0),
        "position_bits": 16 if options.position_bits is None else int(options.position_bits),
        "error_bound": bool(options.error_bound),
    }
