"""``compress_model.py`` / ``sogs-compressor job``: one SageMaker Processing step, end to end.

Find the inputs, compress every scene into its own folder, write per-scene and per-host reports, put the
results where SageMaker (or the S3 output prefix) expects them, and tell SageMaker what happened through the
exit code and ``/opt/ml/output/message``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sogs_compressor import __version__
from sogs_compressor.errors import (
    DeviceError,
    InputNotFoundError,
    Interrupted,
    OutputError,
    SogsError,
    StorageError,
    exit_code_table,
)
from sogs_compressor.fetch.uri import is_s3_uri, parse_s3_uri
from sogs_compressor.fetch.waiting import call_interruptibly
from sogs_compressor.job.batch import (
    STAGING,
    SceneContext,
    SceneRunner,
    chunk_folder_clashes,
    duplicates,
    outcome,
    read_ahead_for,
)
from sogs_compressor.job.cache import cache_key
from sogs_compressor.job.config import JobConfig, early_paths, load_config
from sogs_compressor.job.failure import JOB_EXIT_RULE, error_record, job_exit_code, write_message
from sogs_compressor.job.inputs import GatheredInputs, gather
from sogs_compressor.job.log import bind_job, configure_logging, get_logger
from sogs_compressor.job.read_ahead import ReadAhead
from sogs_compressor.job.signals import StopFlag
from sogs_compressor.layouts import layout_named
from sogs_compressor.read.registry import suffix_list
from sogs_compressor.report.job import build_job_report, report_stem, summarize, write_job_report
from sogs_compressor.report.scene import utc_now
from sogs_compressor.storage.s3 import S3Storage
from sogs_compressor.units import human_bytes

REPORT_UPLOAD_MARGIN_S = 0.3  # kept back from the exit deadline for logging and the exit itself

DESCRIPTION = f"""Run one SageMaker Processing step: compress every scene file ({suffix_list()})
found under the inputs into OUTPUT/<relative path without extension>/ (the SOG, or with --layout lod a Streamed
SOG's lod-meta.json and chunk folders, plus compression_report.json and .txt), write job_report-<host>.json/.txt,
and write one line to /opt/ml/output/message."""

CONFIG_HELP = """configuration (highest precedence first): flags; environment (SOGS_INPUT or S3_INPUT_URI,
SOGS_OUTPUT or S3_OUTPUT_URI, LOG_LEVEL, LOG_FORMAT, SOGS_*; legacy SM_CHANNEL_INPUT, SM_OUTPUT_DATA_DIR,
SM_CURRENT_HOST, SM_HOSTS); <root>/config/processingjobconfig.json + resourceconfig.json; defaults
<root>/processing/input and <root>/processing/output. <root> = --opt-ml-root, $SOGS_OPT_ML_ROOT or /opt/ml."""


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """The job's own flags plus the codec flags (shared with ``sogs-compressor compress``)."""
    from sogs_compressor.codec_args import add_codec_options

    parser.add_argument("--input", action="append", metavar="PATH_OR_S3_URI",
                        help="scene file, folder or s3:// prefix/object (repeat for several inputs)")
    parser.add_argument("--output", metavar="PATH_OR_S3_URI", help="output folder or s3:// prefix")
    parser.add_argument("--output-name", metavar="NAME", help="ProcessingOutput to write to (default: the first)")
    parser.add_argument("--opt-ml-root", metavar="DIR", help="the /opt/ml tree (default: $SOGS_OPT_ML_ROOT or /opt/ml)")
    parser.add_argument("--message-file", metavar="PATH", help="failure/summary line (default: <root>/output/message)")
    parser.add_argument("--host", help="this host's name (default: resourceconfig.json current_host)")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed scene")
    parser.add_argument("--force", action="store_true", help="compress even when an identical earlier output exists")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes (default: one per GPU with a cuda device, else 1)")
    parser.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR (default: $LOG_LEVEL or INFO)")
    add_codec_options(parser)


def epilog() -> str:
    return f"{CONFIG_HELP}\n\nexit codes:\n{exit_code_table()}\n\n{JOB_EXIT_RULE}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compress_model.py", description=DESCRIPTION, epilog=epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"sogs-compressor {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="same as --log-level DEBUG")
    add_job_arguments(parser)
    return parser


def make_s3():
    from sogs_compressor.fetch.s3 import S3Manager

    return S3Manager()


def probe_writable(folder: Path) -> None:
    """Fail at start (not after an hour of work) when the output folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".sogs-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OutputError(f"output folder {folder} is not writable: {error.strerror or error}") from None


NVIDIA_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version")


def quick_gpu_check(requested: str | None, nodes: Sequence[str] = NVIDIA_NODES) -> None:
    """Fail in well under a second (before importing torch) when CUDA is requested on a host with no NVIDIA
    device at all; ``resolve_device`` still does the full check afterwards."""
    name = (requested or "").strip().lower()
    if (name == "cuda" or name.startswith("cuda:")) and not any(os.path.exists(n) for n in nodes):
        raise DeviceError(f"--device {name} was requested but this host has no NVIDIA GPU (no /dev/nvidia* "
                          "device); run on a GPU instance type (g4dn, g5, g6, p3, p5 ...) or use --device cpu")


def codec_compress() -> Callable:
    """The codec's compress function, ``pipeline.compress_file``: imported once the job's start (configuration,
    the quick GPU check, the inputs) is done, so that a bad configuration fails before the codec loads."""
    from sogs_compressor.pipeline import compress_file

    return compress_file


class JobRun:
    """The state of one run, so the normal path and the interrupt watchdog write the same reports.
    ``compress``: the function that compresses one scene (``codec_compress()`` when None; tests give others).
    With several workers it is sent to each worker process by reference: a module-level function."""

    def __init__(self, args: argparse.Namespace, stop: StopFlag, compress: Callable | None = None) -> None:
        self.args = args
        self.stop = stop
        self.compress = compress
        self.env = dict(os.environ)
        self.started_at = utc_now()
        self.started = time.monotonic()
        self.root, self.message_path, self.host = early_paths(args, self.env)
        self.config: JobConfig | None = None
        self.scenes: list = []
        self.results: list[dict] = []
        self.pre_failures: list[dict] = []
        self.output_root: Path | None = None
        self.work_dir: Path | None = None
        self.runner: SceneRunner | None = None
        self.parallel = None
        self.gathered: GatheredInputs | None = None
        self.s3 = None  # one S3Manager for the run (created before any S3 call, reused by the watchdog)
        self.log_settings: dict = {}
        self.log = get_logger()

    # ---- the normal path -----------------------------------------------------------------------------
    def execute(self) -> None:
        env = self.env
        level = getattr(self.args, "log_level", None) or env.get("LOG_LEVEL") or (
            "DEBUG" if getattr(self.args, "verbose", False) else "INFO")
        fmt = configure_logging(level)
        self.config = config = load_config(self.args, env)
        self.host = config.host
        bind = {"job": config.job_name, "host": config.host}
        bind_job(**bind, **({"instance_type": config.instance_type} if config.instance_type else {}))
        self.log_settings = {"level": config.log_level, "format": fmt, "bind": bind}
        configure_logging(config.log_level, fmt)
        self.log.info("job_config", tool_version=__version__, **config.public())

        quick_gpu_check(config.options.device)
        # With S3 inputs a missing GPU fails before any download; with local inputs (SageMaker's File mode) the
        # scenes are listed first, so that the first one is read while torch loads (``_read_first_scene``).
        local_inputs = not any(is_s3_uri(i) for i in config.inputs)
        device = None if local_inputs else self._resolve_device()

        s3_output = parse_s3_uri(config.output).as_prefix() if is_s3_uri(config.output) else None
        needs_work = s3_output is not None or any(is_s3_uri(i) for i in config.inputs)
        if needs_work:
            parent = config.work_dir
            if parent is not None:
                parent.mkdir(parents=True, exist_ok=True)
            self.work_dir = Path(tempfile.mkdtemp(prefix="sogs-job-", dir=parent))
            self.s3 = make_s3()
        self.output_root = self.work_dir / "output" if s3_output else Path(config.output)
        probe_writable(self.output_root)

        self.gathered = gather(config.inputs, self.work_dir or Path(tempfile.gettempdir()), lambda: self.s3,
                               config.hosts, config.host, config.shard, self.stop)
        self.pre_failures = self.gathered.failed
        self.scenes = self.gathered.scenes
        self.log.info("scenes_found", count=len(self.scenes), failed=len(self.pre_failures))
        first_read = self._read_first_scene() if local_inputs else None
        if device is None:
            device = self._resolve_device()
        self._check_nothing_to_do()

        options = config.options
        ctx = SceneContext(output_root=self.output_root, options=options,
                           cache_key=cache_key(options, __version__), tool_version=__version__,
                           job={"name": config.job_name, "host": config.host}, s3_output=s3_output,
                           force=config.force)
        devices = self._plan_devices(device)
        clashes = duplicates(self.scenes)
        if layout_named(options.layout).streamed:
            clashes = {**chunk_folder_clashes(self.scenes), **clashes}
        compress = self.compress or codec_compress()
        if len(devices) <= 1 or len(self.scenes) <= 1:
            from sogs_compressor.job.batch import run_in_process

            ctx.options.device = str(device)
            self.runner = SceneRunner(ctx, compress, self.stop, (lambda: self.s3) if s3_output else None,
                                      read_ahead=first_read)
            run_in_process(self.scenes, self.runner, clashes, config.fail_fast, self.results)
        else:
            from sogs_compressor.job.workers import ParallelRun

            self.log.info("workers", devices=devices)
            self.parallel = ParallelRun(devices, ctx, compress, self.log_settings)
            self.parallel.run(self.scenes, clashes, config.fail_fast, self.stop, self.results)

    def _resolve_device(self):
        from sogs_compressor.device import device_name, resolve_device  # imports torch

        device = resolve_device(self.config.options.device)
        self.log.info("device", device=str(device), name=device_name(device))
        return device

    def _read_first_scene(self) -> ReadAhead | None:
        """Start reading the first scene in the background, before torch loads (seconds, beside a read of up to
        seconds), when it will be compressed in this process by the codec: one scene, or one worker; the runner
        takes the read (``job.read_ahead``). None otherwise."""
        config = self.config
        one_process = len(self.scenes) == 1 or config.workers == 1 or (
            config.workers is None and (config.options.device or "").strip().lower().startswith(("cpu", "cuda:")))
        if not self.scenes or not one_process:
            return None
        read_ahead = read_ahead_for(config.options, self.compress, self.log, self.env)
        return read_ahead if read_ahead is not None and read_ahead.start(self.scenes[0].path, 0) else None

    def _plan_devices(self, device) -> list[str]:
        from sogs_compressor.compute_policy import plan_devices

        gpu_count = 0
        if device.type == "cuda":
            import torch

            gpu_count = torch.cuda.device_count()
        explicit = ":" in (self.config.options.device or "")
        return plan_devices(self.config.workers, device.type, device.index, gpu_count, explicit)

    def _check_nothing_to_do(self) -> None:
        """No scene here: fine on a sharded multi-host job, an error when no input exists anywhere."""
        if self.scenes or self.pre_failures:
            return
        config = self.config
        where = ", ".join(config.inputs)
        if self.gathered.self_listed and self.gathered.listed_scenes == 0:
            raise InputNotFoundError(f"no scene files ({suffix_list()}) under {where}")
        if len(config.hosts) <= 1 and not self.gathered.self_listed:
            raise InputNotFoundError(f"no scene files ({suffix_list()}) under {where}")
        self.log.info("no_input_on_this_host", inputs=config.inputs, hosts=len(config.hosts))

    # ---- the end ---------------------------------------------------------------------------------------
    def outcomes(self) -> list[dict]:
        """Every scene's outcome in input order; one being compressed when the watchdog ended the run is
        ``interrupted``, scenes never reached are ``not_started``."""
        done = {r["scene"]: r for r in self.results}
        current = self.runner.current if self.runner is not None else None
        in_progress = {current.rel} if current is not None else set()
        if self.parallel is not None:
            in_progress |= self.parallel.in_progress()
        ordered = [done.get(s.rel) or outcome(s, "interrupted" if s.rel in in_progress else "not_started")
                   for s in self.scenes]
        return self.pre_failures + ordered

    def conclude(self, error: BaseException | None) -> tuple[int, str]:
        """The exit code and the one-line message for this run."""
        scenes = self.outcomes()
        totals = summarize(scenes)
        if self.stop.is_set:
            current = [s["scene"] for s in scenes if s["status"] == "interrupted"]
            abandoned = f", {', '.join(current)} abandoned" if current else ""
            return 130, (f"interrupted by {self.stop.signal_name}: {totals['files_processed']} of {len(scenes)} "
                         f"scene(s) done{abandoned}; rerun to finish (finished scenes are reused)")
        if error is not None:
            record = error_record(error)
            return record["exit_code"], record["message"]
        failed = [s for s in scenes if s["status"] == "failed"]
        if failed:
            code = job_exit_code([s["error"]["exit_code"] for s in failed])
            first = failed[0]
            not_started = f", {totals['not_started']} not started (--fail-fast)" if totals["not_started"] else ""
            return code, (f"{len(failed)} of {len(scenes)} scene(s) failed{not_started}; first: {first['scene']}: "
                          f"{first['error']['message']}")
        if not scenes:
            return 0, "ok: no scene files on this host (sharded input); nothing to do"
        return 0, (f"ok: {totals['files_processed']} scene(s) ({totals['compressed']} compressed, "
                   f"{totals['reused']} reused), {human_bytes(totals['input_bytes'])} -> {human_bytes(totals['output_bytes'])} "
                   f"({totals['ratio']:.2f}x)")

    def finish(self, error: BaseException | None) -> int:
        """Write the job report and the message, upload the report for an S3 output; return the exit code.

        After a stop signal every step is bounded by the stop flag's exit deadline: the message and the local
        report are written first (they take milliseconds), the upload gets what time is left.
        """
        code, message = self.conclude(error)
        config = self.config
        hosts = config.hosts if config else [self.host]
        if self.runner is not None:
            self.runner.abandon()
        if self.parallel is not None and self.stop.is_set:
            self.parallel.kill()
        report = build_job_report(
            job=config.job_name if config else self.env.get("SOGS_JOB_NAME", "local"), host=self.host,
            hosts=hosts, started_at=self.started_at, duration_s=time.monotonic() - self.started,
            tool_version=__version__, config=config.public() if config else {}, scenes=self.outcomes(),
            exit_code=code, message=message, sharding=self.gathered.sharding if self.gathered else None)
        paths: list[Path] = []
        if self.output_root is not None:
            try:
                paths = write_job_report(self.output_root, report)
                shutil.rmtree(self.output_root / STAGING, ignore_errors=True)
            except OSError as write_error:
                self.log.error("job_report_failed", error=str(write_error))
                if code == 0:
                    code, message = 40, f"job report could not be written: {write_error}"
        write_message(self.message_path, self.host, message, len(hosts))
        if paths and config and is_s3_uri(config.output) and self.s3 is not None:
            try:
                self._upload_report(paths, parse_s3_uri(config.output).as_prefix())
            except SogsError as upload_error:
                self.log.error("job_report_upload_failed", error=str(upload_error))
                if code == 0:
                    code, message = error_record(upload_error)["exit_code"], str(upload_error)
                    write_message(self.message_path, self.host, message, len(hosts))
        log = self.log.info if code == 0 else self.log.error
        log("job_done", exit_code=code, message=message, report=report_stem(self.host), **report["totals"])
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        if self.s3 is not None and not self.stop.is_set:
            self.s3.close()
        return code

    def _upload_report(self, paths: list[Path], prefix) -> None:
        """Upload the job report (text, then JSON); after a stop signal, only until the exit deadline."""

        output = S3Storage(self.s3, prefix)  # no stop check: after a stop signal the deadline bounds it

        def upload() -> None:
            for path in paths:
                output.upload(path, path.name)

        if not self.stop.is_set:
            upload()
            return
        limit = time.monotonic() + self.stop.remaining() - REPORT_UPLOAD_MARGIN_S
        try:
            call_interruptibly(upload, lambda: time.monotonic() >= limit, "uploading the job report")
        except Interrupted:
            raise StorageError(f"the job report did not reach {prefix} before the exit deadline") from None


def run_job(args: argparse.Namespace, compress: Callable | None = None) -> int:
    """Run the job for parsed ``args``; returns the exit code (never raises, except on a second Ctrl-C).
    ``compress``: the function that compresses one scene (default: the codec's, ``codec_compress``).

    After a stop signal the process ends right after the reports and the message are written (``os._exit``
    once logs are flushed): interpreter and library teardown (threads blocked on the network, torch) could
    otherwise take many seconds, and SageMaker's stop does not wait.
    """
    stop = StopFlag()
    installed = False
    with contextlib.suppress(ValueError):  # not the main thread (embedded use): signals stay with the caller
        stop.install()
        installed = True
    run = JobRun(args, stop, compress)
    stop.on_timeout(lambda: run.finish(None))
    error: BaseException | None = None
    try:
        run.execute()
    except Interrupted:
        pass
    except SogsError as caught:
        error = caught
        run.log.error("job_failed", kind=caught.kind, exit_code=caught.exit_code, error=str(caught))
    except KeyboardInterrupt:
        stop.set("SIGINT")
    except Exception as caught:  # a bug: full traceback in the log (without locals), one line in the message
        error = caught
        run.log.exception("internal_error")
    if not stop.finalize_once(lambda: run.finish(error)):
        stop.wait_for_exit()  # the watchdog is writing the reports and will end the process
    code = stop.exit_code if stop.exit_code is not None else 130
    if installed and stop.is_set:
        stop.exit_now(code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_job(args)
