"""A SOG's files (v2, or the v1 layout of sogs 1.1.0) -> a splat set, each attribute through its module's decoder.

The whole meta.json is checked first; then each texture's size is read from its WebP header and checked against
``count`` before it is decoded, and its bytes are read under a limit that ``count`` sets. Memory and time follow
the scene the meta.json describes, never what a texture or a ZIP entry claims.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sogs_compressor.errors import CorruptSogError
from sogs_compressor.sog.colour import decode_colours, decode_opacity_logit
from sogs_compressor.sog.layout import image_to_rows
from sogs_compressor.sog.means import decode_means
from sogs_compressor.sog.meta import (
    FLOAT32_MAX,
    brief,
    codebook,
    file_names,
    integer,
    number,
    numbers,
    parse_meta,
    section,
)
from sogs_compressor.sog.quats import decode_quats
from sogs_compressor.sog.scales import decode_scales
from sogs_compressor.sog.sh_palette import centroids_from_image, decode_centroids, decode_labels
from sogs_compressor.sog.source import BundleSource, FolderSource, open_source
from sogs_compressor.sog.webp import MAX_SIDE, decode_rgba, webp_size
from sogs_compressor.splats import COEFFS_PER_DEGREE, MODELS, SplatSet

MAX_TEXELS = MAX_SIDE * MAX_SIDE
"""The most splats a SOG can hold (one full texture at WebP's side limit)."""

LOG_POSITION_LIMIT = float(np.log1p(FLOAT32_MAX))
"""``means.mins/maxs`` are log1p-transformed float32 positions; beyond this they would decode past float32."""

MAX_PALETTE = 65536
"""Labels are 16 bits, so a palette never has more centroids (64 per centroid-texture row)."""

CENTROID_WIDTHS = tuple(64 * k for k in COEFFS_PER_DEGREE[1:])
"""192, 512, 960: the centroid texture's width for SH degree 1, 2, 3."""

Source = BundleSource | FolderSource


def splat_texel_limit(count: int) -> int:
    """The most texels a per-splat texture may have for ``count`` splats.

    Writers choose any W x H >= count: splat-transform near-square multiples of 4, sogs v1 exactly n x n, others
    power-of-two sides (under 4 x count) or a fixed width (under count + one row). Four times the count plus four
    full-width rows admits all of them and bounds a decoded texture by the scene, not by the file.
    """
    return 4 * count + 4 * MAX_SIDE


def webp_byte_limit(texels: int) -> int:
    """The largest plausible WebP of ``texels`` pixels: lossless worst case under 8 bytes a pixel, plus metadata."""
    return 8 * texels + (1 << 20)


class _Textures:
    """Reads the textures meta.json names, each checked by its header before a pixel is decoded."""

    def __init__(self, source: Source, count: int) -> None:
        self.source = source
        self.count = count
        self.limit = splat_texel_limit(count)
        self.width: int | None = None

    def rows(self, name: str) -> np.ndarray:
        """(count, 4) rows of a per-splat texture; every one has the width of the first (means_l), as viewers need."""
        data = self.source.read(name, webp_byte_limit(self.limit))
        width, height = webp_size(data, name)
        if self.width is None:
            self.width = width
        elif width != self.width:
            raise CorruptSogError(f"{name} is {width} wide but means_l is {self.width}: widths must be equal")
        if width * height < self.count:
            raise CorruptSogError(f"{name} is {width}x{height}, too small for {self.count} splats")
        if width * height > self.limit:
            raise CorruptSogError(
                f"{name} is {width}x{height}, far larger than {self.count} splats need (at most {self.limit} texels)"
            )
        return image_to_rows(decode_rgba(data, name, (width, height)), self.count)

    def centroids(self, name: str, widths: tuple[int, ...]) -> np.ndarray:
        """The shN centroid texture: one of ``widths`` wide, at most MAX_PALETTE / 64 rows."""
        rows_limit = MAX_PALETTE // 64
        data = self.source.read(name, webp_byte_limit(max(widths) * rows_limit))
        width, height = webp_size(data, name)
        if width not in widths:
            raise CorruptSogError(f"{name} is {width} wide; expected {' or '.join(map(str, widths))}")
        if height > rows_limit:
            raise CorruptSogError(f"{name} has {height} rows: more than {MAX_PALETTE} centroids")
        return decode_rgba(data, name, (width, height))


@dataclass(frozen=True)
class _Means:
    files: list[str]
    mins: np.ndarray
    maxs: np.ndarray

    @classmethod
    def from_meta(cls, meta: dict) -> _Means:
        means = section(meta, "means")
        return cls(file_names(means, 2, "means"), numbers(means.get("mins"), 3, "means.mins", LOG_POSITION_LIMIT),
                   numbers(means.get("maxs"), 3, "means.maxs", LOG_POSITION_LIMIT))

    def decode(self, textures: _Textures) -> np.ndarray:
        low, high = textures.rows(self.files[0]), textures.rows(self.files[1])
        return decode_means(low[:, :3], high[:, :3], self.mins, self.maxs)


def _file(meta: dict, key: str) -> str:
    return file_names(section(meta, key), 1, key)[0]


@dataclass(frozen=True)
class _PaletteV2:
    """``shN`` of a v2 meta: ``count`` centroids of degree ``bands``, values through a 256-entry codebook."""

    bands: int
    count: int
    codebook: np.ndarray
    files: list[str]

    @classmethod
    def from_meta(cls, meta: dict) -> _PaletteV2 | None:
        if meta.get("shN") is None:
            return None
        shn = section(meta, "shN")
        return cls(integer(shn.get("bands"), "shN.bands", 1, 3), integer(shn.get("count"), "shN.count", 1, MAX_PALETTE),
                   codebook(shn, "shN"), file_names(shn, 2, "shN"))

    def decode(self, textures: _Textures) -> np.ndarray:
        """(count, 3K) f_rest: each splat's centroid."""
        coeffs = COEFFS_PER_DEGREE[self.bands]
        image = textures.centroids(self.files[0], (64 * coeffs,))
        if image.shape[0] * 64 < self.count:
            raise CorruptSogError(f"shN.count {self.count} does not fit the {image.shape[0]}-row centroid texture")
        centroids = decode_centroids(image, self.count, coeffs, self.codebook)
        labels = decode_labels(textures.rows(self.files[1]))
        if labels.max() >= self.count:
            raise CorruptSogError(f"shN label {int(labels.max())} is not below shN.count {self.count}")
        return centroids[labels]


@dataclass(frozen=True)
class _PaletteV1:
    """``shN`` of a sogs v1 meta: the centroid texture's width gives the degree, its rows the centroid count, and
    values are min/max-quantized over one range."""

    low: float
    high: float
    files: list[str]

    @classmethod
    def from_meta(cls, meta: dict) -> _PaletteV1 | None:
        if meta.get("shN") is None:
            return None
        shn = section(meta, "shN")
        return cls(min(_spread(shn.get("mins"), "shN.mins")), max(_spread(shn.get("maxs"), "shN.maxs")),
                   file_names(shn, 2, "shN"))

    def decode(self, textures: _Textures) -> np.ndarray:
        """(count, 3K) f_rest: each splat's centroid."""
        image = textures.centroids(self.files[0], CENTROID_WIDTHS)
        coeffs = image.shape[1] // 64
        palette = image.shape[0] * 64
        indices = centroids_from_image(image, palette, coeffs)
        centroids = (self.low + (self.high - self.low) * indices.astype(np.float64) / 255.0).astype(np.float32)
        labels = decode_labels(textures.rows(self.files[1]))
        if labels.max() >= palette:
            raise CorruptSogError(f"shN label {int(labels.max())} is outside the {palette} centroids")
        return centroids[labels]


def decode_v2(meta: dict, source: Source) -> SplatSet:
    """SOG version 2 (formats.md 2): codebook-indexed scales and colours, optional shN palette."""
    count = integer(meta.get("count"), "count", 1, MAX_TEXELS)
    means = _Means.from_meta(meta)
    quats = _file(meta, "quats")
    scales_file, scales_book = _file(meta, "scales"), codebook(section(meta, "scales"), "scales")
    sh0_file, sh0_book = _file(meta, "sh0"), codebook(section(meta, "sh0"), "sh0")
    palette = _PaletteV2.from_meta(meta)

    textures = _Textures(source, count)
    positions = means.decode(textures)
    rotations = decode_quats(textures.rows(quats))
    scales = decode_scales(textures.rows(scales_file), scales_book)
    sh0 = textures.rows(sh0_file)
    f_rest = palette.decode(textures) if palette else np.zeros((count, 0), np.float32)
    model = meta.get("model", "default")
    return SplatSet(positions=positions, log_scales=scales, rotations=rotations,
                    opacity_logits=decode_opacity_logit(sh0[:, 3]),
                    f_dc=decode_colours(sh0, sh0_book), f_rest=np.ascontiguousarray(f_rest, np.float32),
                    model=model if isinstance(model, str) and model in MODELS else "default")


def _range(parent: dict, key: str, n: int, where: str) -> np.ndarray:
    return numbers(parent.get(key), n, f"{where}.{key}", FLOAT32_MAX)


def _spread(value: object, what: str) -> list[float]:
    """v1 ``shN.mins``/``maxs``: one number or a non-empty list of them (the reader uses their min / max)."""
    values = value if isinstance(value, list) and value else [value]
    return [number(v, what, FLOAT32_MAX) for v in values]


def decode_v1(meta: dict, source: Source) -> SplatSet:
    """The layout of ``sogs`` 1.1.0 (formats.md 3.1): min/max-quantized channels, logit opacity."""
    if "opacities" in meta:
        raise CorruptSogError("this is the sogs 1.0.0 layout (separate opacities image), which is not supported")
    means = _Means.from_meta(meta)
    shape = section(meta, "means").get("shape")
    if not isinstance(shape, list) or not shape:
        raise CorruptSogError(f"meta.json means.shape is not a list ({brief(shape)})")
    count = integer(shape[0], "means.shape[0]", 1, MAX_TEXELS)
    scales_meta, sh0_meta = section(meta, "scales"), section(meta, "sh0")
    scales_range = _range(scales_meta, "mins", 3, "scales"), _range(scales_meta, "maxs", 3, "scales")
    sh0_range = _range(sh0_meta, "mins", 4, "sh0"), _range(sh0_meta, "maxs", 4, "sh0")
    quats = _file(meta, "quats")
    palette = _PaletteV1.from_meta(meta)

    textures = _Textures(source, count)
    positions = means.decode(textures)
    scales = _lerp(textures.rows(_file(meta, "scales"))[:, :3], *scales_range)
    rotations = decode_quats(textures.rows(quats))
    sh0 = _lerp(textures.rows(_file(meta, "sh0")), *sh0_range)
    f_rest = palette.decode(textures) if palette else np.zeros((count, 0), np.float32)
    return SplatSet(positions=positions, log_scales=scales, rotations=rotations,
                    opacity_logits=sh0[:, 3].copy(), f_dc=np.ascontiguousarray(sh0[:, :3]),
                    f_rest=np.ascontiguousarray(f_rest, np.float32))


def _lerp(bytes_: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """v1 min/max dequantization; lo and hi are within float32, so every result is too."""
    return (lo + (hi - lo) * bytes_.astype(np.float64) / 255.0).astype(np.float32)


def decode_sog(meta: dict, source: Source) -> tuple[SplatSet, str]:
    """(splats, format ``sog`` or ``sog_v1``) of a SOG whose checked meta.json is ``meta``; CorruptSogError for
    anything malformed."""
    version = meta.get("version")
    if version == 2:
        return decode_v2(meta, source), "sog"
    if version is None:
        return decode_v1(meta, source), "sog_v1"
    raise CorruptSogError(f"meta.json has version {brief(version)}; only SOG version 2 and sogs v1 are supported")


def open_sog(path: str | os.PathLike) -> tuple[Callable[[str], bytes], int, Callable[[], None]]:
    """(get(name) -> bytes, bytes on disk or read so far, close) for code that reads a SOG's files itself, such
    as the verifier reading back what was just written. Each read is capped at the largest texture any SOG can
    hold; ``read.sog.read_sog`` is the reader for input, with limits set by the scene."""
    source = open_source(path)
    return (lambda name: source.read(name, webp_byte_limit(MAX_TEXELS))), source.bytes, source.close


def read_meta(get: Callable[[str], bytes]) -> dict:
    """The checked meta.json object of a SOG opened with ``open_sog``."""
    return parse_meta(get("meta.json"))
