"""Find the scenes under the inputs and compress each into its own output folder, one failure at a time.

Every scene ``INPUT/<rel>.<ext>`` becomes ``OUTPUT/<rel>/`` holding the SOG (or a Streamed SOG's lod-meta.json
and chunk folders) and its two reports. A scene is built in ``OUTPUT/.sogs-staging/<hash>/`` and only put in
the output storage (moved on the local disk, uploaded to S3) once all its files exist, the JSON report last
(``job/promote.py``): an output folder holding that report is complete.
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sogs_compressor.errors import InputError, Interrupted, OutputError, SogsError
from sogs_compressor.fetch.uri import S3Uri
from sogs_compressor.formats import BUNDLE_SUFFIX, is_chunk_folder
from sogs_compressor.job import cache
from sogs_compressor.job.failure import error_record
from sogs_compressor.job.log import get_logger
from sogs_compressor.job.naming import fit_path, look_alike
from sogs_compressor.job.promote import SceneFolder, promote, staged_files
from sogs_compressor.job.read_ahead import ReadAhead
from sogs_compressor.job.read_ahead import enabled as read_ahead_enabled
from sogs_compressor.job.scene_progress import ThrottledProgress
from sogs_compressor.options import CompressOptions
from sogs_compressor.prefetch import morton_wanted
from sogs_compressor.progress import interval_from_env
from sogs_compressor.read.registry import scene_stem
from sogs_compressor.report.hashing import sha256_file, sha256_text
from sogs_compressor.report.scene import JSON_NAME, REPORT_NAMES, build_scene_report, write_scene_reports
from sogs_compressor.storage.base import Storage
from sogs_compressor.storage.location import open_output
from sogs_compressor.strict_json import JsonRefused, loads_strict
from sogs_compressor.verify.metrics import beyond_counts

STAGING = ".sogs-staging"
METADATA_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Scene:
    """One input file: where it is, where it came from, and its output folder relative to the output root."""

    path: Path  # the local file (for an S3 input: its download, under a name that fits)
    rel: str  # posix path of the input relative to its input root (with the root's label when several)
    out_rel: str  # rel without the scene extension, every part within naming.NAME_LIMIT: the output folder
    source: str  # the path or s3:// URI a user would recognise


def scene_suffix(name: str) -> str:
    """The scene extension of ``name`` as written (``.ply``, ``.compressed.PLY``, ...), or ``""``."""
    stem = scene_stem(name)
    return name[len(stem):] if stem is not None else ""


def plain_output(rel: str) -> str:
    """``rel`` without its scene extension: the output folder before names are fitted to the file system."""
    parent, _, name = rel.rpartition("/")
    stem = scene_stem(name) or name
    return f"{parent}/{stem}" if parent else stem


def make_scene(path: Path, rel: str, source: str) -> Scene:
    """A scene whose output folder is ``rel`` without its extension, each part shortened when too long."""
    return Scene(path, rel, fit_path(plain_output(rel)), source)


def duplicates(scenes: list[Scene]) -> dict[str, str]:
    """Scenes whose output folder is already taken by an earlier scene: {rel: message}.

    Folders are compared as people (and case-insensitive or normalising file systems) see them: ``Case`` and
    ``case``, or ``café`` written as NFC and as NFD, are one folder.
    """
    owners: dict[str, Scene] = {}
    clashes = {}
    for scene in scenes:
        plain = plain_output(scene.rel)
        key = look_alike(plain)
        owner = owners.get(key)
        if owner is None:
            owners[key] = scene
            continue
        theirs = plain_output(owner.rel)
        how = "" if theirs == plain else (f" (the names differ only in letter case or Unicode normalisation: "
                                          f"{ascii(plain)} vs {ascii(theirs)})")
        clashes[scene.rel] = f"output folder {plain}/ is already used by {owner.rel}{how}; rename one"
    return clashes


def chunk_folder_clashes(scenes: list[Scene]) -> dict[str, str]:
    """With ``--layout lod``, scenes whose output folder would be, or lie in, a chunk folder of another scene's
    Streamed SOG (``a/0_0.ply`` -> ``a/0_0/``, ``a/0_0/c.ply`` -> ``a/0_0/c/``, beside ``a.ply`` ->
    ``a/lod-meta.json`` + ``a/0_0/``): {rel: message}.

    Every name a chunk folder may take is refused, not only those the other scene turns out to need: which it
    needs is known only once it is compressed, and the outcome must not depend on which scene finishes first.
    """
    folders = {look_alike(scene.out_rel): scene for scene in scenes}
    clashes = {}
    for scene in scenes:
        parts = scene.out_rel.split("/")
        for depth in range(1, len(parts)):
            above = "/".join(parts[:depth])
            owner = folders.get(look_alike(above)) if is_chunk_folder(parts[depth]) else None
            if owner is not None and owner is not scene:
                where = "be" if depth == len(parts) - 1 else f"lie in {above}/{parts[depth]}/,"
                clashes[scene.rel] = (f"output folder {scene.out_rel}/ would {where} a chunk folder of {owner.rel}'s Streamed SOG (--layout lod writes "
                                      f"{above}/L_I/ chunk folders); rename one")
                break
    return clashes


def read_metadata(scene_path: Path) -> tuple[dict | None, str | None]:
    """The optional sidecar ``<stem>.metadata.json`` or ``metadata.json`` beside a scene: (data, warning)."""
    stem = scene_stem(scene_path.name) or scene_path.stem
    for candidate in (scene_path.with_name(f"{stem}.metadata.json"), scene_path.with_name("metadata.json")):
        try:
            present = candidate.is_file()
        except OSError:  # e.g. a name over the file-name limit: such a file cannot exist
            present = False
        if not present:
            continue
        if candidate.stat().st_size > METADATA_LIMIT:
            return None, f"{candidate.name} ignored: larger than {METADATA_LIMIT} bytes"
        try:
            return loads_strict(candidate.read_bytes()), None
        except JsonRefused as reason:  # NaN would also make the report that carries it unreadable JSON
            return None, f"{candidate.name} ignored: it {reason}"
    return None, None


@dataclass
class SceneContext:
    """What every scene needs; picklable, so worker processes get a copy."""

    output_root: Path  # local root: the final output, or the staging area of an S3 output
    options: CompressOptions
    cache_key: str
    tool_version: str
    job: dict
    s3_output: S3Uri | None = None
    force: bool = False
    progress_interval: float = field(default_factory=interval_from_env)  # SOGS_PROGRESS_INTERVAL or 5 s
    extra: dict = field(default_factory=dict)

    @property
    def staging_root(self) -> Path:
        return self.output_root / STAGING

    def staging_for(self, scene: Scene) -> Path:
        """A flat staging folder per scene: the output folders of ``a.ply`` and ``a/b.ply`` nest, their staging
        folders must not (clearing one would delete the other)."""
        return self.staging_root / sha256_text(scene.out_rel)[:16]


def outcome(scene: Scene, status: str, **fields) -> dict:
    """A scene's line in the job report (JSON-safe); ``output_shortened_from`` when a name had to be fitted."""
    base = {"scene": scene.rel, "source": scene.source, "output": scene.out_rel, "status": status, "error": None}
    plain = plain_output(scene.rel)
    if plain != scene.out_rel:
        base["output_shortened_from"] = plain
    base.update(fields)
    return base


def _outcome_from_report(scene: Scene, status: str, report: dict, seconds: float, location: str) -> dict:
    splats = report.get("splats") or {}
    return outcome(scene, status, input_bytes=report["input"]["bytes"], output_bytes=report.get("output_bytes"),
                   ratio=report.get("ratio"), splats_in=splats.get("input"), splats_out=splats.get("output"),
                   dropped=splats.get("dropped") or {}, seconds=round(seconds, 3), location=location,
                   input_sha256=report["input"]["sha256"], beyond_tolerance=beyond_counts(report.get("errors") or {}))


def _output_files(folder: Path, result: dict) -> list[dict]:
    """Every file the scene wrote below ``folder`` (a Streamed SOG's chunk files as ``L_I/meta.json`` ...),
    reports excepted, with bytes, sha256 and role."""
    roles = {}
    for item in result.get("output_files", []):
        path = Path(item["path"])
        roles[path.relative_to(folder).as_posix() if path.is_relative_to(folder) else path.name] = item.get("role", "")
    return [{"name": rel, "bytes": (folder / rel).stat().st_size, "sha256": sha256_file(folder / rel),
             "role": roles.get(rel) or _role_by_name(rel)}
            for rel in staged_files(folder) if rel not in REPORT_NAMES]


def _role_by_name(rel: str) -> str:
    return "bundle" if rel.endswith(BUNDLE_SUFFIX) else "meta" if rel.endswith(".json") else "texture"


def _takes_prefetched(compress: Callable) -> bool:
    """Whether the compress function takes a scene read ahead (``pipeline.compress_file``'s ``prefetched``)."""
    try:
        return "prefetched" in inspect.signature(compress).parameters
    except (TypeError, ValueError):
        return False


def read_ahead_for(options: CompressOptions, compress: Callable | None, log=None,
                   env: dict[str, str] | None = None) -> ReadAhead | None:
    """The job's reader of scenes ahead of their turn, or None when ``$SOGS_READ_AHEAD`` turns it off or
    ``compress`` takes no read scene (None: the codec's ``compress_file``, which does: it is not imported here)."""
    if not read_ahead_enabled(env) or (compress is not None and not _takes_prefetched(compress)):
        return None
    return ReadAhead(log=log, morton=morton_wanted(options.order, options.layout))


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class SceneRunner:
    """Compress one scene at a time with a given compress function (the codec's ``compress_file``)."""

    def __init__(self, ctx: SceneContext, compress: Callable, should_stop: Callable[[], bool],
                 s3_factory: Callable | None = None, read_ahead: ReadAhead | None = None) -> None:
        """``read_ahead``: one already reading the first scene (``JobRun._read_first_scene``)."""
        self.ctx = ctx
        self.compress = compress
        self.should_stop = should_stop
        self.s3_factory = s3_factory  # makes the S3 connection of an S3 output (once, on first use)
        self._output: Storage | None = None
        self.current_staging: Path | None = None
        self.current: Scene | None = None  # the scene being run (the watchdog reports it as interrupted)
        self.log = get_logger()
        self.upcoming: Scene | None = None  # the scene after this one, read ahead while this one compresses
        self.read_ahead = read_ahead or read_ahead_for(ctx.options, compress, self.log)
        self._prefetched = None

    @property
    def output(self) -> Storage:
        """Where scenes go: the S3 output prefix, or the local output folder."""
        if self._output is None:
            self._output = open_output(self.ctx.s3_output, self.ctx.output_root, self.s3_factory, self.should_stop)
        return self._output

    def run(self, scene: Scene, clash: str | None = None) -> dict:
        """Compress ``scene``; failures become a ``failed`` outcome; ``Interrupted`` propagates after clean-up."""
        start = time.monotonic()
        self.log.info("scene_start", scene=scene.rel)
        self.current = scene
        self._prefetched = self.read_ahead.take(scene.path) if self.read_ahead is not None else None
        try:
            if clash:
                raise InputError(clash)
            result = self._run(scene, start)
        except Interrupted:
            raise
        except Exception as error:  # one scene's failure never stops the batch
            record = error_record(error if not isinstance(error, OSError) else OutputError(f"{scene.rel}: {error}"))
            if record["kind"] == "internal":
                self.log.exception("scene_failed", scene=scene.rel, **record)
            else:
                self.log.error("scene_failed", scene=scene.rel, **record)
            return outcome(scene, "failed", error=record, seconds=round(time.monotonic() - start, 3))
        finally:
            self.current = None
            self._prefetched = None
        self.log.info("scene_done", **{k: v for k, v in result.items() if k in (
            "scene", "status", "input_bytes", "output_bytes", "ratio", "splats_in", "splats_out", "seconds")})
        return result

    def _run(self, scene: Scene, start: float) -> dict:
        ctx = self.ctx
        if not scene.path.is_file():
            raise InputError(f"{scene.rel}: input file vanished before it could be read")
        input_bytes = scene.path.stat().st_size

        input_sha: str | None = None
        if not ctx.force and self._may_be_cached(scene.out_rel, input_bytes):
            input_sha = sha256_file(scene.path, self.should_stop)
            hit = self._cached(scene.out_rel, input_sha)
            if hit is not None:
                location = self.output.describe(scene.out_rel)
                self.log.info("cache_hit", scene=scene.rel, location=location)
                return _outcome_from_report(scene, "reused", hit, time.monotonic() - start, location)
        with ThreadPoolExecutor(1, thread_name_prefix="sha256") as hashing:
            # Nothing earlier to compare with: the digest (for the report) is computed beside the codec.
            digest = hashing.submit(sha256_file, scene.path, self.should_stop) if input_sha is None else None
            return self._compress(scene, start, input_bytes, digest.result if digest else (lambda: input_sha))

    def _compress(self, scene: Scene, start: float, input_bytes: int, input_sha: Callable[[], str]) -> dict:
        ctx = self.ctx

        metadata, warning = read_metadata(scene.path)
        if warning:
            self.log.warning("metadata_ignored", scene=scene.rel, reason=warning)
        staging = ctx.staging_for(scene)
        _remove(staging)
        staging.mkdir(parents=True, exist_ok=True)
        self.current_staging = staging
        try:
            options = dataclasses.replace(ctx.options, name=Path(scene.out_rel).name)
            progress = self._reading_next(ThrottledProgress(scene.rel, interval=ctx.progress_interval,
                                                            logger=self.log), input_bytes)
            prefetched = {"prefetched": self._prefetched} if self._prefetched is not None else {}
            result = self.compress(scene.path, staging, options, progress=progress, should_stop=self.should_stop,
                                   **prefetched).to_dict()
            if self.should_stop():
                raise Interrupted(f"stopped while compressing {scene.rel}")
            report = build_scene_report(
                scene=scene.rel,
                input_info={"name": scene.rel.rsplit("/", 1)[-1], "source": scene.source, "bytes": input_bytes,
                            "sha256": input_sha()},
                result=result, outputs=_output_files(staging, result), cache_key=ctx.cache_key,
                job=ctx.job, metadata=metadata)
            if warning:
                report["metadata_warning"] = warning
            write_scene_reports(staging, report)
            # The order and what is removed: job/promote.py. Only keys that exist are deleted (in a versioned
            # bucket, deleting a missing key still leaves a delete marker).
            promote(SceneFolder(self.output, staging, scene.out_rel), staged_files(staging))
            _remove(staging)
            location = self.output.describe(scene.out_rel)
        except BaseException:
            _remove(staging)
            raise
        finally:
            self.current_staging = None
        return _outcome_from_report(scene, "ok", report, time.monotonic() - start, location)

    def _reading_next(self, progress: Callable[[str, float], None], input_bytes: int) -> Callable[[str, float], None]:
        """``progress``, which also starts reading the upcoming scene once this one's read is done."""
        upcoming, read_ahead = self.upcoming, self.read_ahead
        if upcoming is None or read_ahead is None:
            return progress

        def hear(stage: str, fraction: float) -> None:
            nonlocal upcoming
            if upcoming is not None and stage != "read":
                read_ahead.start(upcoming.path, input_bytes)
                upcoming = None
            progress(stage, fraction)

        return hear

    def _may_be_cached(self, folder: str, input_bytes: int) -> bool:
        """Whether an earlier report for this scene exists with the same input size and cache key: only then is
        the input hashed before compressing (a multi-GB hash costs seconds)."""
        try:
            earlier = cache.parse_report(self.output.read(f"{folder}/{JSON_NAME}", cache.MAX_REPORT_BYTES))
        except Interrupted:
            raise
        except (OSError, SogsError) as error:  # as in _cached: a failed look-up is a miss
            self.log.warning("cache_lookup_failed", error=str(error))
            return False
        return cache.may_match(earlier, input_bytes, self.ctx.cache_key)

    def _cached(self, folder: str, input_sha: str) -> dict | None:
        try:
            return cache.find(self.output, folder, input_sha, self.ctx.cache_key)
        except Interrupted:
            raise
        except SogsError as error:  # a cache look-up failure is a miss, not a scene failure
            self.log.warning("cache_lookup_failed", error=str(error))
        return None

    def abandon(self) -> None:
        """Delete the partial output of the scene in progress (called on interrupt)."""
        if self.current_staging is not None:
            _remove(self.current_staging)


def run_in_process(scenes: list[Scene], runner: SceneRunner, clashes: dict[str, str], fail_fast: bool,
                   results: list[dict]) -> None:
    """Run scenes one after another, appending outcomes to ``results`` as they finish.

    ``results`` is filled in place so an interrupt handler sees every finished scene.
    """
    for index, scene in enumerate(scenes):
        if runner.should_stop():
            results.extend(outcome(s, "not_started") for s in scenes[index:])
            return
        runner.upcoming = scenes[index + 1] if index + 1 < len(scenes) else None
        try:
            item = runner.run(scene, clashes.get(scene.rel))
        except Interrupted:
            results.append(outcome(scene, "interrupted"))
            results.extend(outcome(s, "not_started") for s in scenes[index + 1:])
            return
        results.append(item)
        if fail_fast and item["status"] == "failed":
            results.extend(outcome(s, "not_started") for s in scenes[index + 1:])
            return
