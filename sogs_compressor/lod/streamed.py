"""``--layout lod``: one scene -> a Streamed SOG (levels of detail, chunked), written and checked.

Stages: the level pyramid (``lod.pyramid``: level 0 is the scene, each further level half the one before, by
decimation; or the levels given, one file each: ``compress_levels``), the partition (``lod.chunks``:
splat-transform's tree and chunk files), one ordinary SOG v2 per chunk (our encoder, each chunk with its own
codebooks and palette), then ``lod-meta.json`` last (``write.lod``). With verification on, every chunk's files are
read back and compared with what was encoded, the written lod-meta.json is read by our reader and must name those
chunks, level 0 is decoded chunk by chunk from the textures (``lod.written``) and measured against the input
(attribute errors; the quality check renders it as for a single SOG), every level is rendered against the input
from the distance at which the engine shows it (``lod.quality``), and the page beside it loads the lod-meta.json.
Each stage but the chunks' loop is a named stage (``stages.py``), as for a single SOG.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sogs_compressor import inflight, presets
from sogs_compressor.device import device_name, out_of_memory_as, resolve_device
from sogs_compressor.errors import Interrupted, SogsError, UsageError
from sogs_compressor.lod.chunks import Partition
from sogs_compressor.lod.chunks import partition as partition_levels
from sogs_compressor.lod.pyramid import (
    build_pyramid,
    check_given_levels,
    check_level_inputs,
    level_counts,
    naming_the_file,
)
from sogs_compressor.lod.written import WrittenLevels
from sogs_compressor.options import CompressOptions
from sogs_compressor.progress import ProgressCallback, no_progress
from sogs_compressor.result import CompressionResult
from sogs_compressor.splats import SplatSet
from sogs_compressor.splats_torch import SplatTensors
from sogs_compressor.stages import StageRunner, stage
from sogs_compressor.write.lod import (
    LOD_META_NAME,
    lod_meta,
    remove_stale_chunks,
    write_chunk,
    write_lod_meta,
)
from sogs_compressor.write.sog import output_paths

if TYPE_CHECKING:
    from sogs_compressor.prefetch import ScenePrefetch


def compress_levels(
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    options: CompressOptions,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    prefetched: Sequence[ScenePrefetch] | None = None,
    folder: Path | None = None,
) -> CompressionResult:
    """``--lod-input levels``: ``inputs`` are one scene's levels, finest first, written as a Streamed SOG as they
    are (no decimation). Each is read and sanitized like a single input (its own exit codes); they must share one
    SH degree (after ``--sh-bands``) and model, and no level may hold more splats than the one before (both usage
    errors: the files are fine, their order or mix is not). ``prefetched``: the same files already being read."""
    from sogs_compressor.output_target import output_name
    from sogs_compressor.read import read_one_level
    from sogs_compressor.read.sanitize import sanitize
    from sogs_compressor.steps import prepare_device

    options = options.validate()
    check_level_inputs(options, len(inputs))
    progress = progress or no_progress
    started = time.perf_counter()
    prepare_device(options.device, inputs[0], options)
    progress("read", 0.0)
    read_s = sanitize_s = 0.0
    levels, scenes, reports = [], [], []
    for index, path in enumerate(inputs):
        t = time.perf_counter()
        try:
            scene = prefetched[index].result()[0] if prefetched is not None else read_one_level(path)
            read_s += time.perf_counter() - t
            t = time.perf_counter()
            splats, report = sanitize(scene.splats, options.invalid)
            sanitize_s += time.perf_counter() - t
        except Interrupted:
            raise
        except SogsError as error:
            raise naming_the_file(error, path) from None
        levels.append(splats)
        scenes.append({"level": index, "path": str(path), "format": scene.format, "bytes": scene.bytes,
                       "splats": scene.splats.count, "sh_degree": scene.splats.sh_degree})
        reports.append(report)
        progress("read", (index + 1) / len(inputs))
        del scene
    check_given_levels(inputs, levels, options.sh_bands)

    result = CompressionResult(input_path=str(inputs[0]), input_format=scenes[0]["format"],
                               input_bytes=sum(s["bytes"] for s in scenes))
    result.timings["read"], result.timings["sanitize"] = read_s, sanitize_s
    result.sh_degree_in = scenes[0]["sh_degree"]
    dropped = {reason: sum(r.dropped.get(reason, 0) for r in reports) for reason in reports[0].dropped}
    result.counts = {"input": sum(s["splats"] for s in scenes), "dropped": dropped,
                     "quaternions_replaced": sum(r.quaternions_replaced for r in reports)}
    name = options.name or output_name(inputs[0])
    compress_streamed(levels[0], output_dir, name, options, progress, should_stop, result,
                      cameras_near=Path(inputs[0]), folder=folder, levels=levels)
    result.lod["input"] = "levels"
    result.lod["inputs"] = [{**s, "dropped": r.total_dropped} for s, r in zip(scenes, reports, strict=True)]
    result.timings["total"] = time.perf_counter() - started
    return result


def compress_streamed(
    splats: SplatSet,
    output_dir: str | Path,
    name: str,
    options: CompressOptions,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    result: CompressionResult | None = None,
    cameras_near: Path | None = None,
    folder: Path | None = None,
    levels: Sequence[SplatSet] | None = None,
) -> CompressionResult:
    """Write ``splats`` (sanitized) as a Streamed SOG: ``folder/lod-meta.json`` and ``folder/L_I/`` chunk SOGs
    (``folder`` defaults to ``output_dir``); the preview and the page go to ``output_dir/name.*``.

    ``levels``: the pyramid as given (level 0 first, ``splats`` itself), written without decimation."""
    from sogs_compressor.steps import finish_result, start_encode, viewer
    from sogs_compressor.verify.decode import confirm_written

    effort = presets.webp_effort(options.validate())
    options = presets.resolve(options)
    progress = progress or no_progress
    result = result or CompressionResult(input_path="<memory>", input_format="memory", input_bytes=0)
    timings = result.timings
    output_dir = Path(output_dir)
    folder = Path(folder) if folder is not None else output_dir

    device = resolve_device(options.device)
    run = StageRunner(timings, progress, should_stop, device)
    result.device, result.device_name = str(device), device_name(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    original = splats  # what every level is rendered against: the input, every SH band
    if levels is not None and (not levels or levels[0] is not splats):
        raise ValueError("levels[0] must be the scene itself")
    if options.sh_bands is not None:
        splats = splats.with_sh_degree(options.sh_bands)
        if levels is not None:
            levels = [splats, *(level.with_sh_degree(options.sh_bands) for level in levels[1:])]
    result.sh_degree_out, result.model = splats.sh_degree, splats.model

    if levels is None:
        try:
            counts = level_counts(splats.count, options.lod_levels, options.lod_min_splats)
        except ValueError as error:
            raise UsageError(f"--lod-levels {options.lod_levels}: {error}") from None
        levels = run(decimate, splats, counts, device, options.seed, run.progress)
    counts = [level.count for level in levels]
    parts = run(partition, levels, options)
    chunking = {"count": options.lod_chunk_count, "extent": options.lod_chunk_extent, "min": options.lod_chunk_min}
    meta = lod_meta(parts, chunking)

    per_level = [{"level": level, "splats": count, "chunks": 0, "bytes": 0} for level, count in enumerate(counts)]
    palettes = []
    written = WrittenLevels() if options.verify else None
    level_palettes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    with inflight.scene_outputs() as outputs:

        def finish(chunk, encoded, encoder) -> float:
            """Wait for ``chunk``'s WebPs, then write and confirm it; the seconds the writing took."""
            webps = encoder.results()
            t = time.perf_counter()
            chunk_meta = encoded.meta
            chunk_dir = folder / Path(chunk.name).parent
            for path in output_paths(chunk_dir, "meta", "dir", chunk_meta):
                outputs.track(path)
            files = write_chunk(folder, chunk.name, chunk_meta, webps)
            if written is not None:
                confirm_written(files, chunk_meta, webps)
                # textures kept only for the levels the verifier or the quality check will decode
                needed = chunk.level == 0 or options.quality_check != "off"
                written.add(chunk.level, chunk.name, chunk_meta, encoded.images if needed else {})
            result.output_files.extend(files)
            per_level[chunk.level]["chunks"] += 1
            per_level[chunk.level]["bytes"] += sum(f.bytes for f in files)
            return time.perf_counter() - t

        # One chunk's WebPs encode while the next chunk is quantized: each chunk is written once its own
        # encoders are done and the next one's quantizers have run (chunks are written in file order).
        started, write_s, pending = time.perf_counter(), 0.0, None
        try:
            for done, chunk in enumerate(parts.files):
                run.checkpoint()
                progress("chunks", done / len(parts.files))
                rows = levels[chunk.level].take(chunk.rows)
                settings = presets.encoder_settings(options, rows.count)
                if options.lod_palette == "level" and rows.sh_degree > 0 and settings["palette_size"] > 0:
                    if chunk.level not in level_palettes:
                        with out_of_memory_as(device, "encoding"):
                            level_palettes[chunk.level] = level_palette(levels[chunk.level], options, device)
                    centroids, labels = level_palettes[chunk.level]
                    settings["palette"] = (centroids, labels[chunk.rows])
                with out_of_memory_as(device, "encoding"):
                    encoded, encoder = start_encode(rows, settings, options, effort, device, no_progress)
                palettes.append(encoded.palette_size)
                if pending is not None:
                    write_s += finish(*pending)
                pending = (chunk, encoded, encoder)
                run.checkpoint()
            if pending is not None:
                write_s += finish(*pending)
                pending = None
        except BaseException:
            if pending is not None:
                pending[2].cancel()
            raise
        timings["encode_chunks"], timings["write"] = time.perf_counter() - started - write_s, write_s
        progress("chunks", 1.0)
        outputs.track(folder / LOD_META_NAME)
        meta_file = write_lod_meta(folder, meta)
        remove_stale_chunks(folder, {Path(chunk.name).parent.name for chunk in parts.files})
        result.output_files.insert(0, meta_file)
        result.counts["output"] = int(sum(counts))
        result.counts["levels"] = counts
        result.palette_size = max(palettes, default=0)
        result.lod = {"levels": per_level, "chunks": len(parts.files), "lod_meta_bytes": meta_file.bytes,
                      "chunking": chunking, "palette": options.lod_palette}

        if written is not None:
            level0 = run(verify, result, levels[0], parts, written, folder, device)
            if options.quality_check != "off":
                run(quality, result, original, level0, options, device, output_dir, name, cameras_near, outputs,
                    run.progress)
                run(level_quality, result, original, level0, written, len(levels), options, device, run.progress)
        if options.viewer == "on":
            run(viewer, result, output_dir, name, splats.positions, options, outputs)
    return finish_result(result, options, device)


def level_palette(level: SplatSet, options: CompressOptions, device: torch.device,
                  method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """``--lod-palette level``: one k-means of a whole level's SH (its palette size, footprint weights, as the
    encoder clusters a chunk): (centroids, each splat's label). Each chunk then stores the entries its splats use,
    with its own codebook: a file shared between chunks is not an option, as the engine frees a chunk's textures
    when it evicts the chunk. ``method``: the k-means method (``quantize.kmeans``; ``auto``, as the encoder)."""
    from sogs_compressor.compute_policy import quantize_device
    from sogs_compressor.quantize.kmeans import kmeans
    from sogs_compressor.quantize.palette import palette_weights

    size = presets.encoder_settings(options, level.count)["palette_size"]
    weights = palette_weights(level.log_scales, level.opacity_logits, quantize_device(device))
    result = kmeans(level.f_rest, min(size, level.count), iterations=options.iterations, seed=options.seed,
                    device=device, method=method, weights=weights)
    return result.centroids, result.labels


@stage(out_of_memory="decimation")
def decimate(splats: SplatSet, counts: Sequence[int], device: torch.device, seed: int,
             progress: ProgressCallback) -> list[SplatSet]:
    """The coarser levels, each by decimation of the one before (``lod.pyramid``); level 0 is ``splats``."""
    return build_pyramid(splats, counts, device=device, seed=seed,
                         on_level=lambda level, _n: progress("decimate", level / max(1, len(counts) - 1)))


@stage(progress=False)
def partition(levels: Sequence[SplatSet], options: CompressOptions) -> Partition:
    """The levels' chunks and the tree that names them (``lod.chunks``: splat-transform's partition)."""
    return partition_levels(levels, options.lod_chunk_count, options.lod_chunk_extent, options.lod_chunk_min)


@stage(out_of_memory="verification")
def verify(result: CompressionResult, level0: SplatSet, parts: Partition, written: WrittenLevels, folder: Path,
           device: torch.device) -> SplatSet | SplatTensors:
    """Check the written lod-meta.json against the chunks, decode level 0 as a reader would (``lod.written``) and
    measure its attribute errors against the input in the same order; returns the decoded level 0 (on the device
    where the verifier runs there)."""
    from sogs_compressor.verify.metrics import attribute_errors
    from sogs_compressor.verify.metrics_torch import attribute_errors_torch

    written.check_manifest(folder / LOD_META_NAME)
    order = np.concatenate([f.rows for f in parts.level_files(0)])
    decoded = _decoded_level(written, 0, device)
    measure = attribute_errors_torch if isinstance(decoded, SplatTensors) else attribute_errors
    result.errors = measure(level0.take(order), decoded)
    return decoded


@stage(out_of_memory="the quality check")
def quality(result: CompressionResult, original: SplatSet, level0: SplatSet | SplatTensors, options: CompressOptions,
            device: torch.device, output_dir: Path, name: str, cameras_near: Path | None,
            outputs: inflight.SceneOutputs, progress: ProgressCallback) -> None:
    """Render the decoded level 0 against the original, as for a single SOG (``steps.measure_quality``); the
    preview image it writes beside the outputs is one of the scene's files."""
    from sogs_compressor.steps import measure_quality

    measure_quality(result, outputs, original, level0, options.quality_check, device, output_dir, name, cameras_near,
                    progress=lambda fraction: progress("quality", fraction), cameras_file=options.cameras)


def _decoded_level(written: WrittenLevels, level: int, device: torch.device) -> SplatSet | SplatTensors:
    """Level ``level`` decoded where the verifier and the quality check run (``compute_policy.verify_on_device``):
    tensors on the GPU, a host ``SplatSet`` on the CPU, where numpy is faster than torch's CPU kernels."""
    from sogs_compressor.compute_policy import verify_on_device

    if verify_on_device(device):
        return written.decode(level, device)
    return written.decode(level, torch.device("cpu")).to_splats()


@stage(out_of_memory="the quality check per level")
def level_quality(result: CompressionResult, original: SplatSet, level0: SplatSet | SplatTensors,
                  written: WrittenLevels, levels: int, options: CompressOptions, device: torch.device,
                  progress: ProgressCallback) -> None:
    """The quality check per level (``lod.quality``): every level, decoded as a reader would (``lod.written``),
    rendered against the original from the distance at which the engine shows it; into ``result.lod``."""
    from sogs_compressor.lod.quality import measure_levels

    def decode(level: int) -> SplatSet | SplatTensors:
        return level0 if level == 0 else _decoded_level(written, level, device)

    entries, method = measure_levels(original, decode, levels, options.quality_check, device,
                                     progress=lambda fraction: progress("level_quality", fraction))
    for entry, measured in zip(result.lod["levels"], entries, strict=True):
        entry.update(measured)
    result.lod["quality"] = method
