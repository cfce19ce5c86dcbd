"""Splat set (already in its final order) -> SOG v2 textures + meta.json (formats.md section 2).

Textures are handed to ``on_image(name, image)`` as soon as each one is ready, so the caller can start its lossless
WebP encoding while the SH palette is still being clustered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from sogs_compressor import tolerances
from sogs_compressor.compute_policy import quantize_device
from sogs_compressor.device import own_stream
from sogs_compressor.progress import ProgressCallback, no_progress
from sogs_compressor.quantize import codebook_rd as rd
from sogs_compressor.quantize.kmeans import kmeans
from sogs_compressor.quantize.palette import order_palette, palette_weights
from sogs_compressor.sog.codebook import codebook_for, value_ops_for
from sogs_compressor.sog.colour import encode_colours, encode_opacity, encode_opacity_on_device
from sogs_compressor.sog.layout import rows_to_image, texture_size, with_alpha
from sogs_compressor.sog.means import encode_positions
from sogs_compressor.sog.meta import build_meta, shn_section
from sogs_compressor.sog.quats import encode_quats, encode_quats_on_device
from sogs_compressor.sog.scales import encode_scales
from sogs_compressor.sog.sh_palette import centroid_image, encode_labels
from sogs_compressor.splats import SplatSet

ImageSink = Callable[[str, np.ndarray], None]


@dataclass
class EncodedSog:
    meta: dict
    images: dict[str, np.ndarray]
    palette_size: int = 0
    kmeans_method: str = ""
    timings: dict = field(default_factory=dict)


def encode_sog(
    splats: SplatSet,
    *,
    palette_size: int,
    iterations: int,
    seed: int,
    device: torch.device,
    kmeans_method: str = "auto",
    palette_order: str = "auto",
    rate_weight: float = 0.0,
    palette_rate_weight: float = 0.0,
    position_bits: int = 16,
    error_bound: bool = True,
    palette: tuple[np.ndarray, np.ndarray] | None = None,
    on_image: ImageSink | None = None,
    progress: ProgressCallback = no_progress,
) -> EncodedSog:
    """Encode every attribute; ``palette_size`` 0 or SH degree 0 writes no shN.

    palette: (centroids, each splat's label) clustered beforehand, e.g. one k-means over a whole level of a
    Streamed SOG (``--lod-palette level``): used instead of clustering these splats; entries no splat uses are
    dropped, and the codebook of the centroid values is these splats' own.

    palette_order: how palette entries are stored (``quantize.palette.order_palette``: ``auto``, ``frequency``,
    ``first-use`` or ``pca``).
    rate_weight: 0 = MSE-optimal codebooks; > 0 = rate-aware ones (``quantize.codebook_rd``) for scales and sh0,
    trading squared error for smaller label textures.
    palette_rate_weight: the same for the codebook of the SH palette's centroid values (``encode_sh_palette``).
    position_bits: bits of the 16-bit position grid kept for opaque splats (fewer for faint ones,
    ``codebook_rd.position_bits``), more where a splat is small next to the grid's cell
    (``codebook_rd.size_position_bits``); 16 stores positions at full precision.
    error_bound: hold every splat's scale and colour within ``tolerances`` (``quantize/bound.py``) and its
    position grid at ``tolerances.MIN_POSITION_BITS`` or finer; False gives the unbounded encoder.
    """
    width, height = texture_size(splats.count)
    images: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}

    def emit(name: str, rows: np.ndarray | None = None, image: np.ndarray | None = None) -> None:
        images[name] = rows_to_image(rows, width, height) if image is None else image
        if on_image is not None:
            on_image(name, images[name])

    t0 = time.perf_counter()
    progress("quantize", 0.0)
    on = quantize_device(device)
    with ThreadPoolExecutor(2, thread_name_prefix="codebook") as pool:
        # The two 256-entry codebooks are host work (sorting, a dynamic programme): they are built, and their
        # images handed on, beside the per-splat encoders and the SH k-means instead of before them. Rate-aware
        # codebooks weight each value by the footprint of its splat (codebook_rd.render_weights).
        splat_footprints = SharedFootprints(splats)

        def row_weights(rows: np.ndarray) -> np.ndarray:
            return rd.footprint_weights(splat_footprints.of(rows))

        weights = row_weights if rate_weight > 0 else None
        ops = value_ops_for(on)

        def build_scales() -> np.ndarray:
            t = time.perf_counter()
            with own_stream(on):
                codebook, labels = encode_scales(splats.log_scales, rate_weight, seed, ops=ops, weights=weights,
                                                 error_bound=error_bound)
            timings["scales_codebook"] = time.perf_counter() - t
            emit("scales.webp", with_alpha(labels))
            return codebook

        def build_colors() -> np.ndarray:
            t = time.perf_counter()
            with own_stream(on):
                codebook, labels = encode_colours(splats.f_dc, rate_weight, seed, ops=ops, weights=weights,
                                                  error_bound=error_bound)
                timings["colors_codebook"] = time.perf_counter() - t
                alpha = encode_opacity(splats.opacity_logits) if on is None else \
                    encode_opacity_on_device(splats.opacity_logits, on)
            emit("sh0.webp", with_alpha(labels, alpha))
            return codebook

        scales_future, colors_future = pool.submit(build_scales), pool.submit(build_colors)
        low, high, mins, maxs = encode_positions(splats, position_bits, on,
                                                 tolerances.MIN_POSITION_BITS if error_bound else 0)
        emit("means_l.webp", with_alpha(low))
        emit("means_u.webp", with_alpha(high))
        emit("quats.webp", encode_quats(splats.rotations) if on is None else
             encode_quats_on_device(splats.rotations, on))
        timings["quantize"] = time.perf_counter() - t0
        progress("quantize", 1.0)  # the per-splat work; the codebooks run on beside the k-means

        shn, palette_entries, kmeans_used = None, 0, ""
        if splats.sh_degree > 0 and (palette_size > 0 or palette is not None):
            shn, palette_entries, kmeans_used = encode_sh_palette(
                splats, min(palette_size, splats.count), iterations=iterations, seed=seed, device=device,
                kmeans_method=kmeans_method, palette_order=palette_order, rate_weight=palette_rate_weight,
                emit=emit, timings=timings, progress=progress, given=palette)

        t2 = time.perf_counter()
        waiting = not (scales_future.done() and colors_future.done())
        if waiting:
            progress("codebooks", 0.0)
        scale_codebook, color_codebook = scales_future.result(), colors_future.result()
        if waiting:
            progress("codebooks", 1.0)
        timings["codebook_wait"] = time.perf_counter() - t2
    meta = build_meta(splats.count, splats.model, (mins, maxs), scale_codebook, color_codebook, shn)
    return EncodedSog(meta=meta, images=images, palette_size=palette_entries, kmeans_method=kmeans_used, timings=timings)


def encode_sh_palette(
    splats: SplatSet, size: int, *, iterations: int, seed: int, device: torch.device, kmeans_method: str,
    palette_order: str, rate_weight: float, emit: Callable[..., None], timings: dict, progress: ProgressCallback,
    given: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[dict, int, str]:
    """The SH palette: k-means of ``f_rest``, its labels and centroid textures; (shN meta, entries, k-means method).
    ``given``: (centroids, labels) clustered beforehand instead of the k-means (method ``given``).

    The k-means weights each splat by its footprint (``palette.palette_weights``): the entries go where SH error
    shows. The labels texture, the largest image, goes to ``emit`` first so its WebP encoding overlaps the
    palette's codebook. That codebook of the centroid values is rate-aware with ``rate_weight`` > 0, each
    entry's values weighted by the footprint it serves: the k-means error, not this rounding, sets the SH error,
    so a coarser rounding costs little picture for many bytes (bench/SIZE.md). Past ``PALETTE_CODEBOOK_SAMPLE``
    values it is built from a sample and every value takes its nearest entry (same bytes and picture measured on
    30K-splat SH3 scenes; 64K x 45 values in one piece took ~1 s on the GPU machine's host).
    """
    t = time.perf_counter()
    progress("kmeans", 0.0)
    on = quantize_device(device)
    weights = palette_weights(splats.log_scales, splats.opacity_logits, on)
    if given is None:
        result = kmeans(splats.f_rest, size, iterations=iterations, seed=seed, device=device, method=kmeans_method,
                        weights=weights, progress=lambda fraction: progress("kmeans", fraction))
        clustered, assigned, method = result.centroids, result.labels, result.method
    else:
        (clustered, assigned), method = given, "given"
        if assigned.shape != (splats.count,) or clustered.shape[1:] != splats.f_rest.shape[1:]:
            raise ValueError("the given palette does not fit these splats")
    centroids, labels = order_palette(clustered, assigned, palette_order)
    timings["kmeans"] = time.perf_counter() - t
    progress("kmeans", 1.0)
    emit("shN_labels.webp", encode_labels(labels))
    t = time.perf_counter()
    served = np.bincount(labels, weights=weights, minlength=centroids.shape[0])
    codebook, centroid_labels = codebook_for(centroids, rate_weight, seed, ops=value_ops_for(on),
                                             sample_size=PALETTE_CODEBOOK_SAMPLE, weights=lambda rows: served[rows])
    emit("shN_centroids.webp", image=centroid_image(centroid_labels, splats.coeffs_per_channel))
    timings["sh_codebook"] = time.perf_counter() - t
    return shn_section(int(centroids.shape[0]), splats.sh_degree, codebook), int(centroids.shape[0]), method


class SharedFootprints:
    """Footprints (``codebook_rd.footprints``) of the rows the scales and colour codebooks are built from,
    computed once: both draw the same rows (same seed, same number of values) from two threads at about the same
    time."""

    def __init__(self, splats: SplatSet) -> None:
        self._splats = splats
        self._lock = threading.Lock()
        self._rows: np.ndarray | None = None
        self._value: np.ndarray | None = None

    def of(self, rows: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._rows is None or not np.array_equal(self._rows, rows):
                self._rows = rows
                self._value = rd.footprints(self._splats.log_scales[rows], self._splats.opacity_logits[rows])
            return self._value


PALETTE_CODEBOOK_SAMPLE = 1 << 18
"""The SH palette's centroid values above which their codebook is built from a sample (up to 65,536 x 45; on
the critical path after the k-means; ``codebook.CODEBOOK_SAMPLE`` for the others)."""
