"""One scene, end to end, as a sequence of named stages: read -> sanitize -> order -> [target search] -> encode
(the WebP encoders start) -> verify -> quality -> WebP wait -> write -> read back -> viewer page.

``compress_file`` is the API the CLI, the SageMaker job and the benchmarks call. Each stage is a function with one
job, named as its key in the report's ``timings`` (``stages.py``: the checkpoint before it, its progress, its
timing and the out-of-memory translation are written once there); the work itself lives in the modules they call.
What the stages hand each other travels in a ``SceneInFlight``. A Streamed SOG has its own stages
(``lod/streamed.py``).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sogs_compressor import inflight, presets, target
from sogs_compressor.compute_policy import reference_renders_overlap_encoder, verify_on_device
from sogs_compressor.device import device_name, resolve_device
from sogs_compressor.errors import OutputError
from sogs_compressor.layouts import layout_named
from sogs_compressor.options import CompressOptions
from sogs_compressor.order.reorder import reorder_in_place
from sogs_compressor.output_target import output_name
from sogs_compressor.prefetch import ScenePrefetch
from sogs_compressor.progress import ProgressCallback, no_progress
from sogs_compressor.read import Scene, read_one_level
from sogs_compressor.read import sanitize as invalid_values
from sogs_compressor.read.sanitize import SanitizeReport
from sogs_compressor.result import CompressionResult, OutputFile
from sogs_compressor.sog.encode import EncodedSog
from sogs_compressor.sog.webp import Effort, RoundTripError, WebpEncoder
from sogs_compressor.splats import SplatSet
from sogs_compressor.splats_torch import SplatTensors
from sogs_compressor.stages import StageRunner, stage
from sogs_compressor.steps import (
    encode_and_pack,
    finish_result,
    measure_quality,
    prepare_device,
    quality_cameras,
    start_encode,
    viewer,
)
from sogs_compressor.verify.decode import confirm_written
from sogs_compressor.verify.metrics import attribute_errors
from sogs_compressor.write.sog import SogPlacement, output_paths, write_sog

if TYPE_CHECKING:
    from sogs_compressor.render.background import BackgroundReference


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


@dataclass
class SceneInFlight:
    """One scene between its stages (``compress_splats``): what it was asked for, then what each stage made.

    splats: what is encoded (SH bands capped by ``--sh-bands``), in the input's order; ``ordered`` once ordered
    original: the input with every SH band where ``--sh-bands`` dropped some (the quality is measured against
        it), else None
    explicit: the settings given explicitly, which the target search keeps as they are
    encoder: the encode's WebP encoders, running on until ``webp_wait`` (None after a target search)
    early: the quality check's reference renders, started during the encode (``reference_in_background``)
    reference_views: (cameras, their source, the reference's renders) made already, or a callable returning them
    measured: (reference, decoded) as verification staged them, kept for the quality check
    webp_wait: the seconds the target search waited for its chosen rung's WebPs
    """

    run: StageRunner
    options: CompressOptions  # resolved: the preset's values filled in
    effort: Effort
    explicit: set[str]
    settings: dict  # encode_sog's settings from the options (presets.encoder_settings)
    device: torch.device
    result: CompressionResult
    output_dir: Path
    name: str
    cameras_near: Path | None
    placement: SogPlacement | None
    splats: SplatSet
    original: SplatSet | None
    consume_input: bool
    ready_order: Callable[[], tuple[np.ndarray, float] | None] | None = None
    ordered: SplatSet | None = None
    encoded: EncodedSog | None = None
    encoder: WebpEncoder | None = None
    early: BackgroundReference | None = None
    reference_views: tuple | Callable[[], tuple] | None = None
    target_report: dict | None = None
    measured: tuple | None = None
    webps: dict[str, bytes] | None = None
    webp_wait: float = 0.0
    outputs: inflight.SceneOutputs | None = None
    sog_files: list[OutputFile] = field(default_factory=list)

    @property
    def reference(self) -> SplatSet:
        """What the rendered quality is measured against (renders ignore the splat order)."""
        return self.ordered if self.original is None else self.original

    def stop_background_work(self) -> None:
        """Cancel the WebP encodes and the reference renders still running (the scene failed or was stopped)."""
        if self.encoder is not None:
            self.encoder.cancel()
        if self.early is not None:
            self.early.cancel()


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
    ready_order: Callable[[], tuple[np.ndarray, float] | None] | None = None,
) -> CompressionResult:
    """Encode an in-memory (already sanitized) splat set and write it; fills and returns ``result``.

    ``cameras_near``: the input file, next to which a 3DGS ``cameras.json`` is looked for (quality check).
    ``consume_input``: the caller hands ``splats`` over; it is reordered in place instead of copied.
    ``placement``: where the bundle and the folder layout go (default ``output_dir/name.sog`` and
    ``output_dir``); the preview is ``output_dir/name.preview.png`` either way.
    ``ready_order``: (these splats' Morton permutation, the seconds it took) if already computed elsewhere, else
    None (``prefetch.ScenePrefetch.take_order``); used with the Morton order only.
    """
    scene = start_scene(splats, Path(output_dir), name, options, progress, should_stop, result, cameras_near,
                        consume_input, placement)
    scene.ready_order = ready_order
    run, options = scene.run, scene.options
    run(order, scene)
    if options.target_psnr is not None:
        run(target_search, scene)
    if scene.encoded is None:  # no target search, or one that found nothing visible to measure
        run(encode, scene)
    run.timings.update(scene.encoded.timings)  # the encoder's own: quantize, kmeans...
    scene.result.palette_size = scene.encoded.palette_size

    with inflight.scene_outputs() as scene.outputs:  # nothing of this scene survives a failure or a signal from here
        with background_work_stopped_on_failure(scene):
            if options.verify:
                run(verify, scene)
                if options.quality_check != "off":
                    run(quality, scene)
            if scene.encoder is not None:
                run(webp_wait, scene)
            else:  # the target search waited for its chosen rung's WebPs
                run.timings["webp_wait"] = scene.webp_wait
        scene.encoded.images.clear()  # the raw textures: the WebP bytes are what is written from here on
        run(write, scene)
        if options.verify:
            run(read_back, scene)
        scene.webps = None  # on disk now
        if options.viewer == "on":
            run(viewer, scene.result, scene.output_dir, scene.name, scene.ordered.positions, options,
                scene.outputs)
    return finish_result(scene.result, options, scene.device)


def start_scene(
    splats: SplatSet, output_dir: Path, name: str, options: CompressOptions, progress: ProgressCallback | None,
    should_stop: Callable[[], bool] | None, result: CompressionResult | None, cameras_near: Path | None,
    consume_input: bool, placement: SogPlacement | None,
) -> SceneInFlight:
    """The scene before its first stage: options resolved, the device chosen (its peak memory counted from
    here), the SH bands capped; ``result`` (or a new one) holds what is known of the output so far."""
    explicit = {key for key in target.SEARCHED if getattr(options, key) is not None}
    effort = presets.webp_effort(options.validate())
    options = presets.resolve(options)
    result = result or CompressionResult(input_path="<memory>", input_format="memory", input_bytes=0)
    device = resolve_device(options.device)
    result.device, result.device_name = str(device), device_name(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    encoded = splats.with_sh_degree(options.sh_bands) if options.sh_bands is not None else splats
    result.sh_degree_out = encoded.sh_degree
    result.model = encoded.model
    return SceneInFlight(
        run=StageRunner(result.timings, progress, should_stop, device), options=options, effort=effort,
        explicit=explicit, settings=presets.encoder_settings(options, encoded.count), device=device, result=result,
        output_dir=output_dir, name=name, cameras_near=cameras_near, placement=placement, splats=encoded,
        original=None if encoded is splats else splats, consume_input=consume_input)


@stage(out_of_memory="encoding")
def order(scene: SceneInFlight) -> None:
    """Put the splats in texture order (``order_splats``), or take the Morton permutation computed beside the
    read when it is ready; in place when the caller handed them over."""
    splats, device = scene.splats, scene.device
    ready = scene.ready_order() if scene.ready_order is not None and scene.options.order == "morton" else None
    if ready is not None and ready[0].shape == (splats.count,):
        permutation, scene.run.timings["order_background"] = ready
    else:
        permutation = order_splats(splats, scene.options.order, device, scene.options.seed, scene.run.progress)
    scene.ordered = reorder_in_place(splats, permutation, device) if scene.consume_input else splats.take(permutation)


@stage(progress=False, out_of_memory="encoding")
def target_search(scene: SceneInFlight) -> None:
    """``--target-psnr``: encode the rungs of ``target.LADDER`` the search asks for and keep the smallest that
    meets the target (``search_target``; it reports its own progress as ``target``). Where the original renders
    nothing from the quality check's cameras, the preset's settings are encoded and the report says why."""
    found = search_target(scene)
    if found is None:
        scene.target_report = {"psnr_content": scene.options.target_psnr, "met": False,
                               "error": "the original renders nothing from the quality check's cameras"}
        return
    packed, scene.target_report, scene.reference_views = found
    scene.encoded, scene.webps, scene.webp_wait, scene.result.textures = packed


@stage(progress=False, out_of_memory="encoding", timed=False)
def encode(scene: SceneInFlight) -> None:
    """Quantize the ordered splats and submit each texture to the WebP encoders as soon as it is ready
    (``steps.start_encode``): the encoders run on while the scene is verified and measured, until ``webp_wait``.
    The encoder reports its own progress and timings (``quantize``, ``kmeans``...)."""
    scene.early = reference_in_background(scene.reference, scene.options, scene.device, scene.cameras_near)
    if scene.early is not None:
        scene.reference_views = scene.early.result
    try:
        scene.encoded, scene.encoder = start_encode(scene.ordered, scene.settings, scene.options, scene.effort,
                                                    scene.device, scene.run.progress)
    except BaseException:
        if scene.early is not None:
            scene.early.cancel()
        raise


@contextlib.contextmanager
def background_work_stopped_on_failure(scene: SceneInFlight) -> Iterator[None]:
    """Around verification and the WebP wait: a WebP that does not decode to its texture is a failed
    verification (``OutputError``); any other failure, a signal's included, cancels the work still running."""
    try:
        yield
    except RoundTripError as error:
        raise OutputError(f"verification failed: {error}") from None
    except BaseException:
        scene.stop_background_work()
        raise


@stage(out_of_memory="verification")
def verify(scene: SceneInFlight) -> None:
    """Decode the encoded scene as a reader will (``verify/decode.py``) and measure the per-attribute errors
    against the ordered splats into ``result.errors``; keeps the decoded scene for the quality check."""
    from sogs_compressor.verify.decode import decode_on_device

    encoded, ordered, reference, device = scene.encoded, scene.ordered, scene.reference, scene.device
    on_device = verify_on_device(device)
    decoded = decode_on_device(encoded.meta, encoded.images, device if on_device else torch.device("cpu"))
    scene.run.progress("verify", 0.5)  # decoded; the errors follow
    if on_device:
        from sogs_compressor.verify.metrics_torch import attribute_errors_torch

        # with a quality check to follow, the reference goes to the device once for both
        staged = SplatTensors.from_splats(reference, device) if scene.options.quality_check != "off" else None
        against = staged if staged is not None and reference is ordered else ordered
        scene.result.errors = attribute_errors_torch(against, decoded)
        measured = (reference if staged is None else staged, decoded)
    else:
        decoded_host = decoded.to_splats()
        scene.result.errors = attribute_errors(ordered, decoded_host)
        measured = (reference, decoded_host)
    if scene.options.quality_check != "off":  # else the decoded scene goes now
        scene.measured = measured


@stage(out_of_memory="the quality check")
def quality(scene: SceneInFlight) -> None:
    """Render the reference and the decoded scene and compare them (PSNR/SSIM, ``steps.measure_quality``); the
    preview image it writes beside the outputs is one of the scene's files."""
    options, result = scene.options, scene.result
    measure_quality(result, scene.outputs, *scene.measured, options.quality_check, scene.device, scene.output_dir,
                    scene.name, scene.cameras_near, scene.reference_views,
                    progress=lambda fraction: scene.run.progress("quality", fraction), cameras_file=options.cameras)
    scene.measured = None
    if scene.target_report is not None:
        result.quality["target"] = scene.target_report


@stage(progress="webp")
def webp_wait(scene: SceneInFlight) -> None:
    """Wait for the WebP encoders the encode started; what each texture's encoding cost goes to the report."""
    scene.webps = scene.encoder.results(lambda fraction: scene.run.progress("webp", fraction))
    scene.result.textures = {key: scene.encoder.stats[key] for key in scene.webps}


@stage()
def write(scene: SceneInFlight) -> None:
    """Write the SOG files of the layout (``write/sog.py``), each one of the scene's files before it exists."""
    options, result = scene.options, scene.result
    meta = scene.encoded.meta
    for path in output_paths(scene.output_dir, scene.name, options.layout, meta, scene.placement):
        scene.outputs.track(path)
    scene.sog_files = write_sog(scene.output_dir, scene.name, options.layout, meta, scene.webps, scene.placement)
    result.output_files = scene.sog_files + result.output_files  # the preview, if any, after the SOG files
    result.counts["output"] = scene.ordered.count


@stage(progress=False, checkpoint=False)
def read_back(scene: SceneInFlight) -> None:
    """Read the written files back and compare them with what was encoded (``verify/decode.py``)."""
    confirm_written(scene.sog_files, scene.encoded.meta, scene.webps)


def reference_in_background(reference: SplatSet, options: CompressOptions, device: torch.device,
                            cameras_near: Path | None) -> BackgroundReference | None:
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


def search_target(scene: SceneInFlight) -> tuple[tuple[EncodedSog, dict[str, bytes], float, dict], dict, tuple] | None:
    """``--target-psnr``: the chosen rung's (encoded, WebP bytes, WebP wait, texture stats), the report's
    ``target`` section (``target.py``) and (cameras, their source, the original's renders) for the final quality
    check; None when the original shows nothing from the quality check's cameras.
    Adds the search's seconds per kind of work to the timings (``target_encode``, ``target_decode``,
    ``target_render``)."""
    from sogs_compressor.read.sog import read_sog
    from sogs_compressor.render.quality import quality_check, quality_score, render_views

    options, device, ordered, original, run = scene.options, scene.device, scene.ordered, scene.reference, scene.run

    def add(key: str, since: float) -> None:
        run.timings[key] = run.timings.get(key, 0.0) + time.perf_counter() - since

    t = time.perf_counter()
    cameras, source = quality_cameras(original, options.quality_check, scene.cameras_near, options.cameras)
    reference = render_views(original, cameras, device, allow_empty=True)
    add("target_render", t)
    if any(view.visible == 0 for view in reference):
        return None

    def evaluate(rung: int) -> target.Probe:
        run.checkpoint()
        run.progress("target", rung / len(target.LADDER))
        rung_settings = target.rung_settings(scene.settings, target.LADDER[rung], scene.explicit)
        t = time.perf_counter()
        packed = encode_and_pack(ordered, rung_settings, options, scene.effort, device, no_progress, run.checkpoint)
        add("target_encode", t)
        t = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="sogs-target-") as probe_dir:
            files = write_sog(Path(probe_dir), "probe", "bundle", packed[0].meta, packed[1])
            bundle = next(f for f in files if f.role == "bundle")
            decoded = read_sog(bundle.path).splats
        add("target_decode", t)
        t = time.perf_counter()
        measured = quality_check(original, decoded, options.quality_check, device, cameras, reference=reference)
        add("target_render", t)
        psnr = quality_score(measured)
        return target.Probe(rung, rung_settings, bundle.bytes, float("-inf") if psnr is None else float(psnr),
                            payload=packed)

    chosen, probes = target.search(options.target_psnr, len(target.LADDER), evaluate)
    run.progress("target", 1.0)
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
    started = time.perf_counter()
    prepare_device(options.device, input_path, options)

    timings: dict[str, float] = {}
    run = StageRunner(timings, progress, should_stop)
    scene, read_background = run(read, input_path, prefetched)
    if read_background is not None:
        timings["read_background"] = read_background
    splats, report = run(sanitize, scene.splats, options.invalid)
    result = CompressionResult(input_path=str(input_path), input_format=scene.format, input_bytes=scene.bytes,
                               timings=timings)
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
    else:
        untouched = report.total_dropped == 0  # the read's splats, so its Morton order is theirs
        compress_splats(splats, output_dir, name, options, progress, should_stop, result,
                        cameras_near=Path(input_path), consume_input=True, placement=placement,
                        ready_order=prefetched.take_order if prefetched is not None and untouched else None)
    result.timings["total"] = time.perf_counter() - started
    return result


@stage(checkpoint=False)
def read(input_path: str | Path, prefetched: ScenePrefetch | None) -> tuple[Scene, float | None]:
    """The scene file, read here or waited for from its read in the background; then also the seconds that whole
    read took (None when read here: the stage's own time is the whole read)."""
    if prefetched is None:
        return read_one_level(input_path), None
    scene, _waited, background = prefetched.result()
    return scene, background


@stage(progress=False, checkpoint=False)
def sanitize(splats: SplatSet, policy: str) -> tuple[SplatSet, SanitizeReport]:
    """Drop (or refuse: ``--invalid error``) the splats holding invalid values (``read/sanitize.py``)."""
    return invalid_values.sanitize(splats, policy)
