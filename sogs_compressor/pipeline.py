"""One scene, end to end: read -> sanitize -> order -> quantize/cluster -> WebP + write -> verify.

``compress_file`` is the API the CLI, the SageMaker job and the benchmarks call. Each stage lives in its own
module; this file only sequences them, times them and collects what they report.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sogs_compressor import inflight, presets, target
from sogs_compressor.compute_policy import reference_renders_overlap_encoder, verify_on_device
from sogs_compressor.device import device_name, out_of_memory_as, resolve_device
from sogs_compressor.errors import Interrupted, OutputError
from sogs_compressor.layouts import layout_named
from sogs_compressor.options import CompressOptions
from sogs_compressor.order.reorder import reorder_in_place
from sogs_compressor.output_target import output_name
from sogs_compressor.prefetch import ScenePrefetch
from sogs_compressor.progress import ProgressCallback, no_progress
from sogs_compressor.read import read_one_level
from sogs_compressor.read.sanitize import sanitize
from sogs_compressor.result import CompressionResult, OutputFile
from sogs_compressor.sog.encode import EncodedSog, encode_sog
from sogs_compressor.sog.webp import Effort, RoundTripError, WebpEncoder
from sogs_compressor.splats import SplatSet
from sogs_compressor.splats_torch import SplatTensors
from sogs_compressor.steps import (
    encode_and_pack,
    finish_result,
    measure_quality,
    prepare_device,
    quality_cameras,
    write_viewer_page,
)
from sogs_compressor.verify.decode import confirm_written
from sogs_compressor.verify.metrics import attribute_errors
from sogs_compressor.write.sog import SogPlacement, output_paths, write_sog


def order_splats(splats: SplatSet, order: str, device: torch.device, seed: int,
                 progress: ProgressCallback = no_progress) -> np.ndarray:
    """The permutation that puts splats in texture order (PLAS reports its passes as stage ``order``)."""
    if order == "plas":
        from sogs_compressor.order.plas import plas_features, plas_order
        from sogs_compressor.sog.layout import texture_size

        width, _ = texture_size(splats.count)
        return plas_order(plas_features(splats), seed=seed, device=device, width=width,
                          progress=lambda _stage, fraction: progress("order", fraction))
    from sogs_compressor.order.morton import morton_order

    return morton_order(splats.positions, device=device)


def compress_splats(
    splats: SplatSet,
    output_dir: str | Path,
    name: str,
    options: CompressOptions,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    result: CompressionResult | None = None,
    cameras_near: Path | None = None,
    consume_input: bool = False,
    placement: SogPlacement | None = None,
) -> CompressionResult:
    """Encode an in-memory (already sanitized) splat set and write it; fills and returns ``result``.

    ``cameras_near``: the input file, next to which a 3DGS ``cameras.json`` is looked for (quality check).
    ``consume_input``: the caller hands ``splats`` over; it is reordered in place instead of copied.
    ``placement``: where the bundle and the folder layout go (default ``output_dir/name.sog`` and
    ``output_dir``); the preview is ``output_dir/name.preview.png`` either way.
    """
    explicit = {key for key in target.SEARCHED if getattr(options, key) is not None}
    effort = presets.webp_effort(options.validate())
    options = presets.resolve(options)
    progress = progress or no_progress
    result = result or CompressionResult(input_path="<memory>", input_format="memory", input_bytes=0)
    timings = result.timings

    def checkpoint() -> None:
        if should_stop is not None and should_stop():
            raise Interrupted("stopped by a signal before the scene was complete; nothing was written for it")

    device = resolve_device(options.device)
    result.device, result.device_name = str(device), device_name(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    original = splats  # what the rendered quality is measured against, SH bands included
    if options.sh_bands is not None:
        splats = splats.with_sh_degree(options.sh_bands)
    result.sh_degree_out = splats.sh_degree
    result.model = splats.model

    checkpoint()
    t = time.perf_counter()
    progress("order", 0.0)
    with out_of_memory_as(device, "encoding"):
        permutation = order_splats(splats, options.order, device, options.seed, progress)
        ordered = reorder_in_place(splats, permutation, device) if consume_input else splats.take(permutation)
        timings["order"] = time.perf_counter() - t
        progress("order", 1.0)

        checkpoint()
        settings = presets.encoder_settings(options, ordered.count)
        found, target_report, target_views = None, None, None
        reference = ordered if original is splats else original  # renders ignore the splat order
        if options.target_psnr is not None:
            t = time.perf_counter()
            found = search_target(ordered, reference, settings, explicit, options, effort, device, cameras_near,
                                  checkpoint, progress, timings)
            timings["target_search"] = time.perf_counter() - t
            if found is None:  # nothing visible to measure: the preset's settings, and the report says why
                target_report = {"psnr_content": options.target_psnr, "met": False,
                                 "error": "the original renders nothing from the quality check's cameras"}
        encoder, early = None, None
        if found is None:  # the WebP encoders run on while the scene is verified and measured
            early = reference_in_background(reference, options, device, cameras_near)
            if early is not None:
                target_views = early.result
            encoder = WebpEncoder(effort, round_trip=options.verify)
            try:
                encoded = encode_sog(ordered, **settings, iterations=options.iterations, seed=options.seed,
                                     device=device, on_image=encoder.submit, progress=progress)
            except BaseException:
                encoder.cancel()
                if early is not None:
                    early.cancel()
                raise
        else:
            (encoded, webps, webp_wait, result.textures), target_report, target_views = found
    timings.update(encoded.timings)
    result.palette_size = encoded.palette_size

    with inflight.scene_outputs() as outputs:  # nothing of this scene survives a failure or a signal from here on
        try:
            if options.verify:
                checkpoint()
                verify_and_measure(result, encoded, ordered, reference, options, device, Path(output_dir), name,
                                   cameras_near, (target_report, target_views), outputs, progress, checkpoint)
            if encoder is not None:
                checkpoint()
                t = time.perf_counter()
                progress("webp", 0.0)
                webps = encoder.results(lambda fraction: progress("webp", fraction))
                webp_wait = time.perf_counter() - t
                result.textures = {key: encoder.stats[key] for key in webps}
                progress("webp", 1.0)
        except RoundTripError as error:
            raise OutputError(f"verification failed: {error}") from None
        except BaseException:
            if encoder is not None:
                encoder.cancel()
            if early is not None:
                early.cancel()
            raise
        timings["webp_wait"] = webp_wait
        encoded.images.clear()  # the raw textures: the WebP bytes are what is written from here on

        checkpoint()
        t = time.perf_counter()
        progress("write", 0.0)
        for path in output_paths(Path(output_dir), name, options.layout, encoded.meta, placement):
            outputs.track(path)
        sog_files = write_sog(Path(output_dir), name, options.layout, encoded.meta, webps, placement)
        result.output_files = sog_files + result.output_files  # the preview, if any, after the SOG files
        timings["write"] = time.perf_counter() - t
        progress("write", 1.0)
        if options.verify:
            t = time.perf_counter()
            confirm_written(sog_files, encoded.meta, webps)
            timings["read_back"] = time.perf_counter() - t
        del webps
        result.counts["output"] = ordered.count
        write_viewer_page(result, Path(output_dir), name, ordered.positions, options, outputs)
    return finish_result(result, options, device)


def verify_and_measure(
    result: CompressionResult, encoded: EncodedSog, ordered: SplatSet, reference: SplatSet,
    options: CompressOptions, device: torch.device, output_dir: Path, name: str, cameras_near: Path | None,
    target: tuple[dict | None, tuple | None], outputs: inflight.SceneOutputs, progress: ProgressCallback,
    checkpoint: Callable[[], None],
) -> None:
    """Decode the encoded scene as a reader will (``verify/decode.py``), measure the per-attribute errors against
    ``ordered`` and run the quality check (renders of ``reference`` and the decoded scene, PSNR/SSIM, a preview
    image written beside the outputs); fills ``result.errors`` / ``result.quality`` and their timings.
    ``target``: the target search's report and views, if it ran."""
    from sogs_compressor.verify.decode import decode_on_device

    timings = result.timings
    target_report, target_views = target
    t = time.perf_counter()
    progress("verify", 0.0)
    on_device = verify_on_device(device)
    with out_of_memory_as(device, "verification"):
        decoded = decode_on_device(encoded.meta, encoded.images, device if on_device else torch.device("cpu"))
        progress("verify", 0.5)  # decoded; the errors follow
        if on_device:
            from sogs_compressor.verify.metrics_torch import attribute_errors_torch

            # with a quality check to follow, the reference goes to the device once for both
            staged = SplatTensors.from_splats(reference, device) if options.quality_check != "off" else None
            against = staged if staged is not None and reference is ordered else ordered
            result.errors = attribute_errors_torch(against, decoded)
            measured = (reference if staged is None else staged, decoded)
        else:
            decoded_host = decoded.to_splats()
            result.errors = attribute_errors(ordered, decoded_host)
            measured = (reference, decoded_host)
        del decoded
    timings["verify"] = time.perf_counter() - t
    progress("verify", 1.0)
    if options.quality_check == "off":
        return
    checkpoint()
    t = time.perf_counter()
    progress("quality", 0.0)
    outputs.track(output_dir / f"{name}.preview.png")
    with out_of_memory_as(device, "the quality check"):
        result.quality = measure_quality(*measured, options.quality_check, device, output_dir, name, cameras_near,
                                         target_views, progress=lambda fraction: progress("quality", fraction),
                                         cameras_file=options.cameras)
    del measured
    if target_report is not None:
        result.quality["target"] = target_report
    preview = result.quality.get("preview")
    if preview:
        path = output_dir / preview
        result.output_files.append(OutputFile(path=str(path), bytes=path.stat().st_size, role="preview"))
    timings["quality"] = time.perf_counter() - t
    progress("quality", 1.0)


def reference_in_background(reference: SplatSet, options: CompressOptions, device: torch.device,
                            cameras_near: Path | None):
    """On the CPU path, the quality check's renders of ``reference`` started on a thread now, to overlap the
    encoder (``render/background.py``); None where they are not wanted then (no quality check, a target search
    that renders its own, or where ``compute_policy.reference_renders_overlap_encoder`` says no)."""
    if not options.verify or options.quality_check == "off" or options.target_psnr is not None \
            or not reference_renders_overlap_encoder(device):
        return None
    from sogs_compressor.render.background import BackgroundReference

    return BackgroundReference(
        reference, lambda splats: quality_cameras(splats, options.quality_check, cameras_near, options.cameras),
        device)


def search_target(
    ordered: SplatSet, original: SplatSet, settings: dict, explicit: set[str], options: CompressOptions,
    effort: Effort, device: torch.device, cameras_near: Path | None, checkpoint: Callable[[], None],
    progress: ProgressCallback, timings: dict,
) -> tuple[tuple[EncodedSog, dict[str, bytes], float, dict], dict, tuple] | None:
    """``--target-psnr``: the chosen rung's (encoded, WebP bytes, WebP wait, texture stats), the report's
    ``target`` section (``target.py``) and (cameras, their source, the original's renders) for the final quality
    check; None when the original shows nothing from the quality check's cameras.
    Adds the search's seconds per kind of work to ``timings`` (``target_encode``, ``target_decode``,
    ``target_render``)."""
    from sogs_compressor.read.sog import read_sog
    from sogs_compressor.render.quality import quality_check, quality_score, render_views

    def add(key: str, since: float) -> None:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - since

    t = time.perf_counter()
    cameras, source = quality_cameras(original, options.quality_check, cameras_near, options.cameras)
    reference = render_views(original, cameras, device, allow_empty=True)
    add("target_render", t)
    if any(view.visible == 0 for view in reference):
        return None

    def evaluate(rung: int) -> target.Probe:
        checkpoint()
        progress("target", rung / len(target.LADDER))
        rung_settings = target.rung_settings(settings, target.LADDER[rung], explicit)
        t = time.perf_counter()
        packed = encode_and_pack(ordered, rung_settings, options, effort, device, no_progress, checkpoint)
        add("target_encode", t)
        t = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="sogs-target-") as probe_dir:
            files = write_sog(Path(probe_dir), "probe", "bundle", packed[0].meta, packed[1])
            bundle = next(f for f in files if f.role == "bundle")
            decoded = read_sog(bundle.path).splats
        add("target_decode", t)
        t = time.perf_counter()
        quality = quality_check(original, decoded, options.quality_check, device, cameras, reference=reference)
        add("target_render", t)
        psnr = quality_score(quality)
        return target.Probe(rung, rung_settings, bundle.bytes, float("-inf") if psnr is None else float(psnr),
                            payload=packed)

    chosen, probes = target.search(options.target_psnr, len(target.LADDER), evaluate)
    progress("target", 1.0)
    return chosen.payload, target.summary(options.target_psnr, chosen, probes), (cameras, source, reference)


def compress_file(
    input_path: str | Path,
    output_dir: str | Path,
    options: CompressOptions | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    prefetched: ScenePrefetch | None = None,
    placement: SogPlacement | None = None,
) -> CompressionResult:
    """Read one scene file (PLY, compressed PLY or SOG) and write its SOG v2 into ``output_dir``.

    ``prefetched``: the same file already being read in the background (``prefetch.ScenePrefetch``); the
    ``read`` timing is then the time waited for it here and ``read_background`` the whole read.
    ``placement``: where the bundle and the folder layout go instead (``compress_splats``).
    """
    options = (options or CompressOptions()).validate()
    progress = progress or no_progress
    started = time.perf_counter()
    prepare_device(options.device, input_path, options)

    progress("read", 0.0)
    t = time.perf_counter()
    if prefetched is not None:
        scene, read_seconds, background = prefetched.result()
    else:
        scene = read_one_level(input_path)
        read_seconds = background = time.perf_counter() - t
    progress("read", 1.0)

    t = time.perf_counter()
    splats, report = sanitize(scene.splats, options.invalid)
    result = CompressionResult(input_path=str(input_path), input_format=scene.format, input_bytes=scene.bytes)
    result.timings["read"] = read_seconds
    if prefetched is not None:
        result.timings["read_background"] = background
    result.timings["sanitize"] = time.perf_counter() - t
    result.sh_degree_in = scene.splats.sh_degree
    result.counts = {
        "input": scene.splats.count,
        "dropped": dict(report.dropped),
        "quaternions_replaced": report.quaternions_replaced,
    }
    del scene
    name = options.name or output_name(input_path)
    if layout_named(options.layout).streamed:  # a Streamed SOG: its own stages (lod/streamed.py)
        from sogs_compressor.lod.streamed import compress_streamed

        compress_streamed(splats, output_dir, name, options, progress, should_stop, result,
                          cameras_near=Path(input_path), folder=placement.folder if placement else None)
        result.timings["total"] = time.perf_counter() - started
        return result
    compress_splats(splats, output_dir, name, options, progress, should_stop, result, cameras_near=Path(input_path),
                    consume_input=True, placement=placement)
    result.timings["total"] = time.perf_counter() - started
    return result
