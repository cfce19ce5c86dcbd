"""Speed/size presets: what ``--preset fast|balanced|max`` fills in for settings left unset.

The numbers come from the measurements in bench/RESULTS.md (WebP effort dominates the CPU time; more k-means
iterations buy little after ~10).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sogs_compressor.options import CompressOptions


@dataclass(frozen=True)
class Preset:
    webp_method: int
    webp_quality: int
    iterations: int
    order: str


PRESETS = {
    "fast": Preset(webp_method=0, webp_quality=0, iterations=5, order="morton"),
    "balanced": Preset(webp_method=4, webp_quality=50, iterations=10, order="morton"),
    "max": Preset(webp_method=6, webp_quality=90, iterations=20, order="morton"),
}


def resolve(options: CompressOptions) -> CompressOptions:
    """A copy of ``options`` with every None setting filled from its preset."""
    preset = PRESETS[options.preset]
    return replace(
        options,
        webp_method=preset.webp_method if options.webp_method is None else options.webp_method,
        webp_quality=preset.webp_quality if options.webp_quality is None else options.webp_quality,
        iterations=preset.iterations if options.iterations is None else options.iterations,
        order=preset.order if options.order is None else options.order,
    )
