"""Settings of one compression, shared by the CLI, the job and the benchmarks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sogs_compressor.layouts import DEFAULT_LAYOUT, LAYOUT_NAMES

INVALID_POLICIES = ("drop", "error")
ORDERS = ("morton", "plas")
PRESETS = ("fast", "balanced", "max")
QUALITY_CHECKS = ("off", "fast", "full")
PALETTE_POLICIES = ("auto", "st")
PALETTE_ORDERS = ("auto", "frequency", "first-use", "pca")
LOD_PALETTES = ("chunk", "level")
VIEWER_CHOICES = ("on", "off")


@dataclass
class CompressOptions:
    """What to produce and how hard to try.

    layout: one of ``layouts.OUTPUT_LAYOUTS``: ``bundle`` (one NAME.sog), ``dir`` (meta.json + WebP files),
        ``both``, or ``lod`` (a Streamed SOG: lod-meta.json + one SOG folder per chunk, levels of detail by
        decimation; ``lod/streamed.py``).
    device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; None = ``$SOGS_DEVICE``, else ``auto``.
    sh_bands: cap on the SH degree written (None = keep the input's).
    iterations: k-means (Lloyd) iterations for the SH palette.
    seed: seed for every random choice (k-means init, PLAS shuffles): same seed, same bytes.
    invalid: what to do with splats holding non-finite values: ``drop`` them (counted) or ``error``.
    order: splat order in the textures.
    preset: speed/size trade-off; fills in what is left as None below.
    webp_method / webp_quality: libwebp lossless effort (method 0-6, quality 0-100 = compression effort).
    palette_size: SH palette entries (None = from ``palette``).
    palette: SH palette size policy when palette_size is None: ``st`` (splat-transform's rule) or ``auto``
        (one entry per 8 splats); see quantize/palette.py.
    palette_order: storage order of palette entries: ``frequency`` (most used first) or ``pca``.
    rate_weight: 0 = MSE-optimal 256-entry codebooks; > 0 trades squared error for bytes
        (quantize/codebook_rd.py; about ``rate_weight`` x the error for ``log2(rate_weight)/2`` fewer bits per
        value); None = the preset's.
    palette_rate_weight: the same trade for the 256-entry codebook of the SH palette's centroid values (weighted
        by the footprint each entry serves); 0 = MSE-optimal; None = the preset's.
    position_bits: bits of the 16-bit position grid kept for opaque splats (faint ones keep 1-2 fewer;
        quantize/codebook_rd.py); 16 = full precision; None = the preset's.
    target_psnr: when set, the smallest output whose rendered content PSNR (mean over the quality check's views)
        is at least this many dB: a search over position bits, rate weights and palette size (``target.py``);
        needs the quality check. None = the preset's settings as they are.
    error_bound: hold every splat within the per-splat tolerances (``tolerances.py``): scale growth, colour,
        opacity, rotation, position grid; False lets the codebooks move rare splats further for fewer bytes.
    verify: decode our own output and measure the per-attribute errors.
    quality_check: render original and decoded output and compare (PSNR/SSIM + preview image): off|fast|full.
    name: base name of the outputs (default: the input's name without extensions).
    viewer: ``on`` writes ``NAME.html`` beside the SOG, a page that shows it in the PlayCanvas engine with the
        report's key numbers (``write/viewer.py``); ``off`` skips it.
    viewer_engine: the URL the page loads the PlayCanvas engine from (None = the pinned public copy).
    lod_levels / lod_min_splats: the pyramid of ``--layout lod`` (``lod.pyramid.level_counts``): at most this many
        levels, none below this many splats (None/None: 5 levels, none below 16,384 splats).
    lod_chunk_count / lod_chunk_extent / lod_chunk_min: its chunking, as splat-transform's ``--lod-chunk-*``
        (``lod.chunks``): K splats per chunk file, world units a leaf may span, K splats below which a leaf is
        not split for its extent.
    lod_palette: where a Streamed SOG's SH palettes are clustered: ``chunk`` (each chunk its own k-means) or
        ``level`` (one k-means per level; each chunk stores the entries its splats use). Either way every chunk
        holds its own palette file: the engine cannot share one between chunks (bench/RESULTS.md).
    cameras: a 3DGS training ``cameras.json`` whose cameras the quality check adds to its views (None = one lying
        next to the input, if any).
    """

    layout: str = DEFAULT_LAYOUT
    device: str | None = None
    sh_bands: int | None = None
    iterations: int | None = None
    seed: int = 0
    invalid: str = "drop"
    order: str | None = None
    preset: str = "balanced"
    webp_method: int | None = None
    webp_quality: int | None = None
    palette_size: int | None = None
    palette: str = "st"
    palette_order: str = "auto"
    rate_weight: float | None = None
    palette_rate_weight: float | None = None
    position_bits: int | None = None
    target_psnr: float | None = None
    error_bound: bool = True
    verify: bool = True
    quality_check: str = "fast"
    name: str | None = None
    viewer: str = "on"
    viewer_engine: str | None = None
    cameras: str | None = None
    lod_levels: int | None = None
    lod_min_splats: int | None = None
    lod_chunk_count: int = 512
    lod_chunk_extent: float = 16.0
    lod_chunk_min: int = 8
    lod_palette: str = "chunk"
    extra: dict = field(default_factory=dict)

    def validate(self) -> CompressOptions:
        from sogs_compressor.errors import SogsError

        def bad(msg: str) -> SogsError:
            err = SogsError(msg)
            err.exit_code = 2
            err.kind = "usage"
            return err

        choices = (  # (flag, value, allowed values); only --order may be None (the preset fills it in)
            ("--layout", self.layout, LAYOUT_NAMES), ("--invalid", self.invalid, INVALID_POLICIES),
            ("--order", ORDERS[0] if self.order is None else self.order, ORDERS), ("--preset", self.preset, PRESETS),
            ("--quality-check", self.quality_check, QUALITY_CHECKS), ("--palette", self.palette, PALETTE_POLICIES),
            ("--palette-order", self.palette_order, PALETTE_ORDERS), ("--viewer", self.viewer, VIEWER_CHOICES),
            ("--lod-palette", self.lod_palette, LOD_PALETTES),
        )
        for flag, value, allowed in choices:
            if value not in allowed:
                raise bad(f"{flag} must be one of {', '.join(allowed)}, not {value!r}")
        ranges = (  # (flag, value or None, lowest, highest or None)
            ("--sh-bands", self.sh_bands, 0, 3), ("--iterations", self.iterations, 0, None),
            ("--palette-size", self.palette_size, 1, 65536), ("--rate-weight", self.rate_weight, 0, 64),
            ("--palette-rate-weight", self.palette_rate_weight, 0, 64),
            ("--position-bits", self.position_bits, 8, 16), ("--webp-method", self.webp_method, 0, 6),
            ("--webp-quality", self.webp_quality, 0, 100), ("--target-psnr", self.target_psnr, 10, 99),
            ("--lod-levels", self.lod_levels, 1, 16), ("--lod-min-splats", self.lod_min_splats, 1, None),
            ("--lod-chunk-count", self.lod_chunk_count, 1, 1 << 20), ("--lod-chunk-extent", self.lod_chunk_extent, 0, None),
            ("--lod-chunk-min", self.lod_chunk_min, 0, 1 << 20),
        )
        for flag, value, low, high in ranges:
            if value is not None and not (low <= value and (high is None or value <= high)):
                bounds = f">= {low}" if high is None else f"{low}..{high}"
                raise bad(f"{flag} must be {bounds}, not {value}")
        if self.viewer_engine is not None and (not self.viewer_engine.strip() or any(
                ch.isspace() or ord(ch) < 32 for ch in self.viewer_engine)):
            raise bad(f"--viewer-engine must be a URL without spaces or control characters, not {self.viewer_engine!r}")
        if self.target_psnr is not None and (not self.verify or self.quality_check == "off"):
            raise bad("--target-psnr measures rendered quality: it cannot be combined with --no-verify or "
                      "--quality-check off")
        if self.layout == "lod" and self.target_psnr is not None:
            raise bad("--target-psnr is not supported with --layout lod yet")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
