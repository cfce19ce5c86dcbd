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
from functools import partial

import numpy as np
import torch

from sogs_compressor import __version__, tolerances
from sogs_compressor.compute_policy import quantize_device
from sogs_compressor.device import own_stream
from sogs_compressor.encode import attributes as attr
from sogs_compressor.encode import attributes_torch as attr_torch
from sogs_compressor.encode.layout import rows_to_image, texture_size, with_alpha
from sogs_compressor.progress import ProgressCallback, no_progress
from sogs_compressor.quantize import codebook_rd as rd
from sogs_compressor.quantize.bound import bound_codebook
from sogs_compressor.quantize.codebook import build_codebook
from sogs_compressor.quantize.kmeans import kmeans
from sogs_compressor.quantize.palette import order_palette, palette_weights
from sogs_compressor.quantize.value_ops import HOST, ValueOps
from sogs_compressor.splats import SplatSet

GENERATOR = f"sogs-compressor v{__version__}"

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
                codebook, labels = codebook_for(splats.log_scales, rate_weight, seed, ops=ops, weights=weights,
                                                window=SCALE_WINDOW if error_bound else None)
            timings["scales_codebook"] = time.perf_counter() - t
            emit("scales.webp", with_alpha(labels))
            return codebook

        def build_colors() -> np.ndarray:
            t = time.perf_counter()
            with own_stream(on):
                codebook, labels = codebook_for(splats.f_dc, rate_weight, seed, ops=ops, weights=weights,
                                                window=COLOUR_WINDOW if error_bound else None)
                timings["colors_codebook"] = time.perf_counter() - t
                alpha = attr.encode_opacity(splats.opacity_logits) if on is None else \
                    attr_torch.encode_opacity(splats.opacity_logits, on)
            emit("sh0.webp", with_alpha(labels, alpha))
            return codebook

        scales_future, colors_future = pool.submit(build_scales), pool.submit(build_colors)
        low, high, mins, maxs = encode_positions(splats, position_bits, on,
                                                 tolerances.MIN_POSITION_BITS if error_bound else 0)
        emit("means_l.webp", with_alpha(low))
        emit("means_u.webp", with_alpha(high))
        emit("quats.webp", attr.encode_quats(splats.rotations) if on is None else
             attr_torch.encode_quats(splats.rotations, on))
        timings["quantize"] = time.perf_counter() - t0
        progress("quantize", 1.0)  # the per-splat work; the codebooks run on beside the k-means

        meta: dict = {"version": 2, "asset": {"generator": GENERATOR}, "count": splats.count}
        if splats.model != "default":
            meta["model"] = splats.model
        meta["means"] = {"mins": mins, "maxs": maxs, "files": ["means_l.webp", "means_u.webp"]}
        encoded = EncodedSog(meta=meta, images=images, timings=timings)
        if splats.sh_degree > 0 and (palette_size > 0 or palette is not None):
            meta["shN"], encoded.palette_size, encoded.kmeans_method = encode_sh_palette(
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
    meta["scales"] = {"codebook": _floats(scale_codebook), "files": ["scales.webp"]}
    meta["quats"] = {"files": ["quats.webp"]}
    meta["sh0"] = {"codebook": _floats(color_codebook), "files": ["sh0.webp"]}
    if "shN" in meta:
        meta["shN"] = meta.pop("shN")  # keep the documented key order: means, scales, quats, sh0, shN
    return encoded


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
    emit("shN_labels.webp", attr.encode_labels(labels))
    t = time.perf_counter()
    served = np.bincount(labels, weights=weights, minlength=centroids.shape[0])
    codebook, centroid_labels = codebook_for(centroids, rate_weight, seed, ops=value_ops_for(on),
                                             sample_size=PALETTE_CODEBOOK_SAMPLE, weights=lambda rows: served[rows])
    emit("shN_centroids.webp", image=attr.centroid_image(centroid_labels, splats.coeffs_per_channel))
    timings["sh_codebook"] = time.perf_counter() - t
    meta = {
        "count": int(centroids.shape[0]),
        "bands": splats.sh_degree,
        "codebook": _floats(codebook),
        "files": ["shN_centroids.webp", "shN_labels.webp"],
    }
    return meta, int(centroids.shape[0]), method


def value_ops_for(device: torch.device | None) -> ValueOps:
    """The codebook builds' passes over all values: on ``device`` (same results), or numpy when None."""
    return HOST if device is None else attr_torch.DeviceOps(device)


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


def encode_positions(
    splats: SplatSet, position_bits: int, device: torch.device | None, min_bits: int = 0
) -> tuple[np.ndarray, np.ndarray, list[float], list[float]]:
    """means_l / means_u bytes and the log-domain mins / maxs, coarsened below 16 bits for faint splats
    (``codebook_rd.position_bits``) where their move stays small next to their size (``size_position_bits``),
    never below ``min_bits`` (the error bound's ``tolerances.MIN_POSITION_BITS``)."""
    if device is None:
        means, opacity_bits, size_bits, coarsen = attr.encode_means, rd.position_bits, rd.size_position_bits, \
            rd.coarsen_grid
    else:
        means, opacity_bits, size_bits, coarsen = (
            partial(f, device=device) for f in (attr_torch.encode_means, attr_torch.position_bits,
                                                attr_torch.size_position_bits, attr_torch.coarsen_grid))
    low, high, mins, maxs = means(splats.positions)
    if position_bits < 16:
        by_opacity = splats.opacity_logits if rd.POSITION_SHIFT_BY_OPACITY else None
        kept = np.maximum.reduce([
            opacity_bits(splats.opacity_logits, position_bits),
            size_bits(splats.positions, splats.log_scales, mins, maxs, shift=rd.POSITION_SHIFT, opacity_logits=by_opacity),
            np.full(splats.count, min_bits, np.int64)])
        low, high = coarsen(low, high, kept)
    return low, high, mins, maxs


SCALE_WINDOW = (tolerances.SCALE_SHRINK, tolerances.SCALE_GROWTH)
"""(below, above) of every log-scale under the error bound."""
COLOUR_WINDOW = (tolerances.F_DC, tolerances.F_DC)
"""(below, above) of every f_dc value under the error bound."""


CODEBOOK_SAMPLE = 1 << 20
"""Pooled values above which a codebook is built from a seeded sample of this many (plus the extremes)."""
EXACT_ENTRIES = 256
"""Columns with at most this many distinct values keep them exactly (the codebook's size)."""
PALETTE_CODEBOOK_SAMPLE = 1 << 18
"""The same for the SH palette's centroid values (up to 65,536 x 45; on the critical path after the k-means)."""


def codebook_for(
    values: np.ndarray, rate_weight: float, seed: int, ops: ValueOps = HOST,
    sample_size: int | None = None, weights: Callable[[np.ndarray], np.ndarray] | None = None,
    window: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """256-entry codebook and labels of ``values``; large inputs build the codebook from a sample.

    Building costs O(n log n); a million values already pin down 256 levels, so for millions of splats the
    codebook comes from a seeded sample of ``sample_size`` (default ``CODEBOOK_SAMPLE``) values (with the minimum
    and maximum, so the range is covered) and every value then takes its nearest entry, as with rate weight 0 at
    any size. ``ops``: where the passes over all values run (``quantize/value_ops.py``; the same codebook and
    labels on the host and on a device).
    ``weights(rows)``: the error weight of each given row of ``values`` (every value of
    a row shares it) for the rate-aware codebook (``codebook_rd.quantize_1d_rd``); asked only for the rows the
    codebook is built from.
    ``window``: (below, above): every finite value must decode within ``[v - below, v + above]``
    (``quantize/bound.py``, the per-splat error bound); when the bound needs entries the codebook has used, it is
    rebuilt with that many fewer entries (reserved for the values the bound moves).
    """
    if window is None:
        return _codebook_of_size(values, rate_weight, seed, ops, sample_size, weights, EXACT_ENTRIES)
    reserve = 0
    while True:
        codebook, labels = _codebook_of_size(values, rate_weight, seed, ops, sample_size, weights,
                                             EXACT_ENTRIES - reserve)
        bounded, bounded_labels, missing = bound_codebook(values, codebook, labels, *window, size=EXACT_ENTRIES,
                                                          ops=ops)
        if missing == 0:
            return bounded, bounded_labels
        if reserve + missing > EXACT_ENTRIES - MIN_CODEBOOK_ENTRIES:
            return bounded, bounded_labels  # not coverable in 256 entries: best effort, the reports count the rest
        reserve += max(missing, reserve)


MIN_CODEBOOK_ENTRIES = 16
"""Entries the codebook keeps when the bound reserves the others (past that, the bound is given up)."""


def _codebook_of_size(
    values: np.ndarray, rate_weight: float, seed: int, ops: ValueOps,
    sample_size: int | None, weights: Callable[[np.ndarray], np.ndarray] | None, size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``codebook_for`` without the bound, with ``size`` entries (``EXACT_ENTRIES`` unless the bound reserves)."""
    flat = values.reshape(-1)
    sample_size = CODEBOOK_SAMPLE if sample_size is None else sample_size
    whole = flat.size <= sample_size
    if flat.size == 0 or not np.all(np.isfinite(flat)):
        return rd.quantize_1d_rd(values, rate_weight, size)  # the MSE codebook's sentinels for infinities
    per_row = flat.size // values.shape[0]
    if whole and rate_weight == 0:
        codebook = build_codebook(flat.astype(np.float32, copy=False), size)  # quantize_1d's; labels below
    elif whole:  # the rate-aware labels are its own groups, not the nearest entries
        value_weights = None if weights is None else np.repeat(weights(np.arange(values.shape[0])), per_row)
        return rd.quantize_1d_rd(values, rate_weight, size, weights=value_weights, ops=ops)
    else:
        rng = np.random.default_rng(seed)
        picked = np.concatenate([rng.integers(0, flat.size, sample_size), [flat.argmin(), flat.argmax()]])
        sample = flat[picked]
        order = ops.stable_argsort(sample) if rate_weight > 0 else None
        ranked = sample[order] if order is not None else np.sort(sample)
        if _distinct_count(ranked) <= EXACT_ENTRIES and np.unique(flat).size <= EXACT_ENTRIES:
            # Already quantized (a re-encoded SOG): a sample can miss a rare value; the whole set is kept exact.
            return rd.quantize_1d_rd(values, rate_weight)
        if rate_weight == 0:
            codebook = build_codebook(sample, size, presorted=ranked)
        else:
            codebook, _ = rd.quantize_1d_rd(sample, rate_weight, size, ops=ops, order=order,
                                            weights=None if weights is None else weights(picked // per_row))
    return codebook, ops.nearest(values, codebook)


def _distinct_count(ranked: np.ndarray) -> int:
    """Distinct values of a sorted array (what ``np.unique(...).size`` gives, without sorting again)."""
    return int(np.count_nonzero(ranked[1:] != ranked[:-1])) + 1 if ranked.size else 0


def _floats(values: np.ndarray) -> list[float]:
    values = np.asarray(values, np.float32)
    if not np.all(np.isfinite(values)):
        raise ValueError("codebook holds non-finite values")
    return [float(v) for v in values]
