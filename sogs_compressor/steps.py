"""The steps every output layout shares (one SOG: ``pipeline``; a Streamed SOG: ``lod/streamed.py``): the GPU's
warm-up, encoding and packing a set of splats, the quality check, the viewer page (a stage: ``stages.py``) and the
finished result."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sogs_compressor import __version__, inflight
from sogs_compressor.compute_policy import warm_up_device
from sogs_compressor.device import requested_device, resolve_device
from sogs_compressor.errors import DeviceError
from sogs_compressor.host_memory import peak_rss_bytes
from sogs_compressor.options import CompressOptions
from sogs_compressor.progress import ProgressCallback
from sogs_compressor.read.ply import sh_rest_count_hint
from sogs_compressor.result import CompressionResult, OutputFile
from sogs_compressor.sog.encode import EncodedSog, encode_sog
from sogs_compressor.sog.webp import Effort, WebpEncoder
from sogs_compressor.splats import COEFFS_PER_DEGREE, SplatSet, sh_degree_for_rest_count
from sogs_compressor.splats_torch import SplatTensors
from sogs_compressor.stages import stage


@stage(progress=False, checkpoint=False)
def viewer(result: CompressionResult, output_dir: Path, name: str, positions: np.ndarray, options: CompressOptions,
           outputs: inflight.SceneOutputs) -> None:
    """The viewer page NAME.html beside the output (``--viewer on``), listed in ``result``."""
    from sogs_compressor.write.viewer import viewer_path, write_viewer

    outputs.track(viewer_path(output_dir, name))
    result.output_files.append(write_viewer(output_dir, name, result, positions, options.viewer_engine))


def finish_result(result: CompressionResult, options: CompressOptions, device: torch.device) -> CompressionResult:
    """What every compress reports once its outputs are written: settings, tool version, peak memory."""
    result.settings = options.to_dict()
    result.settings["device"] = requested_device(options.device)
    result.tool_version = __version__
    result.peak_rss_bytes = peak_rss_bytes()
    if device.type == "cuda":
        result.peak_gpu_bytes = int(torch.cuda.max_memory_allocated(device))
    return result


def start_encode(
    ordered: SplatSet, settings: dict, options: CompressOptions, effort: Effort, device: torch.device,
    progress: ProgressCallback,
) -> tuple[EncodedSog, WebpEncoder]:
    """Quantize ``ordered`` and submit each texture's WebP (with its own ``effort``) as soon as it is ready; the
    encodes go on after this returns, so that the caller can start its next piece of work before
    ``WebpEncoder.results`` (the chunks of a Streamed SOG: one chunk's WebPs beside the next one's quantizers)."""
    encoder = WebpEncoder(effort, round_trip=options.verify)
    try:
        encoded = encode_sog(ordered, **settings, iterations=options.iterations, seed=options.seed, device=device,
                             on_image=encoder.submit, progress=progress)
    except BaseException:
        encoder.cancel()
        raise
    return encoded, encoder


def encode_and_pack(
    ordered: SplatSet, settings: dict, options: CompressOptions, effort: Effort, device: torch.device,
    progress: ProgressCallback, checkpoint: Callable[[], None],
) -> tuple[EncodedSog, dict[str, bytes], float, dict]:
    """Quantize and WebP-encode (``start_encode``), then wait for the encoders: (encoded, WebP bytes by name,
    seconds waited for the WebP encoders after the quantizers were done, what each texture's encoding cost:
    ``WebpEncoder.stats``)."""
    encoded, encoder = start_encode(ordered, settings, options, effort, device, progress)
    try:
        checkpoint()
        t = time.perf_counter()
        progress("webp", 0.0)
        webps = encoder.results()
        progress("webp", 1.0)
        return encoded, webps, time.perf_counter() - t, {name: encoder.stats[name] for name in webps}
    except BaseException:
        encoder.cancel()
        raise


def quality_cameras(original: SplatSet | SplatTensors, mode: str, cameras_near: Path | None,
                    cameras_file: str | Path | None = None) -> tuple[list, str]:
    """The quality check's cameras and their source: orbit and interior views of ``original``, plus a
    deterministic subset of the training cameras of ``cameras_file`` (``--cameras``) or, without one, of a 3DGS
    ``cameras.json`` next to the input ``cameras_near``."""
    from sogs_compressor.render.camera import find_cameras_json, load_cameras_json
    from sogs_compressor.render.quality import describe_source, plan_cameras, view_plan

    if cameras_file is None and cameras_near is not None:
        cameras_file = find_cameras_json(cameras_near)
    training = load_cameras_json(cameras_file) if cameras_file is not None else None
    cameras = plan_cameras(original, view_plan(mode), training=training)
    return cameras, describe_source(cameras, cameras_file)


def measure_quality(result: CompressionResult, outputs: inflight.SceneOutputs, original: SplatSet | SplatTensors,
                    decoded: SplatSet | SplatTensors, mode: str, device: torch.device, output_dir: Path, name: str,
                    cameras_near: Path | None, views: tuple | Callable[[], tuple] | None = None,
                    progress: Callable[[float], None] | None = None, *,
                    cameras_file: str | Path | None = None) -> None:
    """Rendered PSNR/SSIM of the decoded output against the original into ``result.quality``, plus a preview
    image beside the SOG: one of the scene's files (tracked in ``outputs`` before it exists, listed in
    ``result.output_files`` once written).

    Orbit and interior views, and the training cameras when a 3DGS ``cameras.json`` sits next to the input;
    ``views`` = (cameras, source, the original's renders) made earlier (the target search) are reused; a callable
    returning them is called inside the error handling (a render that failed in the background reports here).
    ``progress(fraction)``: the share of the renders done (``quality_check``).
    """
    from sogs_compressor.render.errors import RenderError
    from sogs_compressor.render.quality import quality_check

    preview_path = output_dir / f"{name}.preview.png"
    outputs.track(preview_path)
    try:
        if callable(views):  # renders of the original made in the background (``reference_in_background``)
            views = views()
        cameras, source, reference = views or (*quality_cameras(original, mode, cameras_near, cameras_file), None)
        result.quality = quality_check(original, decoded, mode, device=device, cameras=cameras, reference=reference,
                                       preview_path=preview_path, camera_source=source, progress=progress)
    except RenderError as error:  # the SOG itself is fine; say why there are no numbers
        result.quality = {"mode": mode, "error": str(error)}
        return
    preview = result.quality.get("preview")
    if preview:
        path = output_dir / preview
        result.output_files.append(OutputFile(path=str(path), bytes=path.stat().st_size, role="preview"))


def prepare_device(requested: str | None, input_path: str | Path | None = None,
                   options: CompressOptions | None = None) -> threading.Thread | None:
    """Start the GPU's one-time work (Triton's import, CUDA start-up, kernel compiles) in the background, to
    overlap reading; the thread that does it, or None.

    With a standard PLY as ``input_path`` only the k-means kernel for its SH dimension is compiled (its header
    says which); otherwise every SH dimension. Silent when the device is not a usable GPU: compress_splats reports
    device problems where they matter. Importing Triton takes a fifth of a second, which the caller would
    otherwise wait for before its first stage.
    """
    try:
        device = resolve_device(requested)
    except DeviceError:
        return None
    if not warm_up_device(device):
        return None
    degree = None
    rest = sh_rest_count_hint(input_path) if input_path is not None else None
    if rest is not None:
        degree = sh_degree_for_rest_count(rest)
        if options is not None and options.sh_bands is not None:
            degree = min(degree, options.sh_bands)
    renders = options is None or (options.verify and options.quality_check != "off")
    thread = threading.Thread(target=_warm_up_kernels, args=(device, degree, renders), name="triton-import",
                              daemon=True)
    thread.start()
    return thread


def _warm_up_kernels(device: torch.device, degree: int | None, renders: bool) -> None:
    """``prepare_device``'s thread: import Triton and the kernels, then compile them (``assign_triton.warm_up``);
    a failure here changes nothing (the first real call compiles, or reports)."""
    try:
        from sogs_compressor.quantize.assign_triton import SH_DIMS, warm_up  # imports Triton: only for a GPU
        from sogs_compressor.quantize.dp_triton import warm_up as warm_up_codebook_dp

        dims = SH_DIMS if degree is None else (3 * COEFFS_PER_DEGREE[degree],) if degree > 0 else ()
        then: tuple = (warm_up_codebook_dp,)  # the rate-aware codebooks' dynamic programme (every preset's default)
        if renders:
            from sogs_compressor.render.composite_triton import warm_up as warm_up_compositor

            then += (warm_up_compositor,)
        warm_up(device, dims, then)
    except Exception:  # noqa: BLE001, S110 - see the docstring
        pass
