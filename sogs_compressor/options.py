"""Settings of one compression, shared by the CLI, the job and the benchmarks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

LAYOUTS = ("bundle", "dir", "both")
INVALID_POLICIES = ("drop", "error")
ORDERS = ("morton", "plas")
PRESETS = ("fast", "balanced", "max")
QUALITY_CHECKS = ("off", "fast", "full")
PALETTE_POLICIES = ("auto", "st")
PALETTE_ORDERS = ("frequency", "pca")


@dataclass
class CompressOptions:
    """What to produce and how hard to try.

    layout: ``bundle`` (one NAME.sog), ``dir`` (meta.json + WebP files) or ``both``.
    device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
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
    position_bits: bits of the 16-bit position grid kept for opaque splats (faint ones keep 1-2 fewer;
        quantize/codebook_rd.py); 16 = full precision; None = the preset's.
    verify: decode our own output and measure the per-attribute errors.
    quality_check: render original and decoded output and compare (PSNR/SSIM + preview image): off|fast|full.
    name: base name of the outputs (default: the input's name without extensions).
    """

    layout: str = "both"
    device: str = "auto"
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
    palette_order: str = "frequency"
    rate_weight: float | None = None
    position_bits: int | None = None
    verify: bool = True
    quality_check: str = "fast"
    name: str | None = None
    extra: dict = field(default_factory=dict)

    def validate(self) -> CompressOptions:
        from sogs_compressor.errors import SogsError

        def bad(msg: str) -> SogsError:
            err = SogsError(msg)
            err.exit_code = 2
            err.kind = "usage"
            return err

        if self.layout not in LAYOUTS:
            raise bad(f"--layout must be one of {', '.join(LAYOUTS)}, not {self.layout!r}")
        if self.invalid not in INVALID_POLICIES:
            raise bad(f"--invalid must be drop or error, not {self.invalid!r}")
        if self.order is not None and self.order not in ORDERS:
            raise bad(f"--order must be one of {', '.join(ORDERS)}, not {self.order!r}")
        if self.preset not in PRESETS:
            raise bad(f"--preset must be one of {', '.join(PRESETS)}, not {self.preset!r}")
        if self.quality_check not in QUALITY_CHECKS:
            raise bad(f"--quality-check must be one of {', '.join(QUALITY_CHECKS)}, not {self.quality_check!r}")
        if self.sh_bands is not None and not 0 <= self.sh_bands <= 3:
            raise bad(f"--sh-bands must be 0..3, not {self.sh_bands}")
        if self.iterations is not None and self.iterations < 0:
            raise bad("--iterations must be >= 0")
        if self.palette_size is not None and not 1 <= self.palette_size <= 65536:
            raise bad("--palette-size must be 1..65536")
        if self.palette not in PALETTE_POLICIES:
            raise bad(f"--palette must be one of {', '.join(PALETTE_POLICIES)}, not {self.palette!r}")
        if self.palette_order not in PALETTE_ORDERS:
            raise bad(f"--palette-order must be one of {', '.join(PALETTE_ORDERS)}, not {self.palette_order!r}")
        if self.rate_weight is not None and not 0 <= self.rate_weight <= 64:
            raise bad(f"--rate-weight must be 0..64, not {self.rate_weight}")
        if self.position_bits is not None and not 8 <= self.position_bits <= 16:
            raise bad(f"--position-bits must be 8..16, not {self.position_bits}")
        if self.webp_method is not None and not 0 <= self.webp_method <= 6:
            raise bad("--webp-method must be 0..6")
        if self.webp_quality is not None and not 0 <= self.webp_quality <= 100:
            raise bad("--webp-quality must be 0..100")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
