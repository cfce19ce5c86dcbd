"""Turn the configured inputs (local folders/files or s3:// URIs) into the scenes of this host.

Local inputs are walked (``batch.discover_scenes``). S3 inputs are listed by the job itself ("self-listing"):
with several hosts each scene key goes to the host chosen by ``sharding.host_index`` (a hash of the scene's
name, never its position in a listing). Each scene key of this host is downloaded into a folder of its own,
``<work>/input/<label>/<digest of the key>/<name>`` with its metadata sidecars beside it, under a name that fits
the file system (``naming.fit_name``): keys such as ``a.ply`` and ``a.ply/b.ply`` (a file and a folder of the same
name locally) or a 251-byte name cannot collide or overflow. A key that is unsafe or cannot be downloaded fails
only its own scene.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sogs_compressor.errors import InputNotFoundError, Interrupted, OutputError, SogsError
from sogs_compressor.fetch.paths import UnsafeKeyError, key_parts, relative_key
from sogs_compressor.fetch.uri import S3Uri, is_s3_uri, names_one_object, parse_s3_uri
from sogs_compressor.job import sharding
from sogs_compressor.job.batch import (
    Scene,
    discover_scenes,
    make_scene,
    plain_output,
    scene_stem,
    scene_suffix,
)
from sogs_compressor.job.failure import error_record
from sogs_compressor.job.log import get_logger
from sogs_compressor.job.naming import fit_name, fit_path

KEY_DIGEST_CHARS = 16


@dataclass
class GatheredInputs:
    scenes: list[Scene] = field(default_factory=list)  # this host's scenes, ready to compress
    failed: list[dict] = field(default_factory=list)  # outcomes of scenes that could not be fetched
    listed_scenes: int = 0  # scene keys seen by self-listing, before sharding (0 for local inputs)
    self_listed: bool = False
    sharding: dict | None = None  # the assignment of listed keys to hosts (several hosts only)


def sidecars_for(scene_key: str, all_keys: Collection[str]) -> list[str]:
    """Metadata sidecars of a scene key that exist in the listing."""
    parent = scene_key.rsplit("/", 1)[0] + "/" if "/" in scene_key else ""
    stem = scene_stem(scene_key.rsplit("/", 1)[-1]) or ""
    return [k for k in (f"{parent}{stem}.metadata.json", f"{parent}metadata.json") if k in all_keys]


def labels_for(inputs: list[str]) -> list[str]:
    """No label for one input; with several, each input's last path part (made unique) prefixes its scenes."""
    if len(inputs) == 1:
        return [""]
    labels, seen = [], set()
    for index, text in enumerate(inputs):
        name = PurePosixPath(text.rstrip("/").split("://", 1)[-1]).name or f"input{index}"
        label = name if name not in seen else f"{name}-{index}"
        seen.add(label)
        labels.append(label)
    return labels


def _join(label: str, rel: str) -> str:
    return f"{label}/{rel}" if label else rel


def local_scene_folder(dest: Path, key: str) -> Path:
    """A download folder of one scene key's own: short, stable, and distinct for distinct keys."""
    return dest / hashlib.sha256(key.encode("utf-8")).hexdigest()[:KEY_DIGEST_CHARS]


def failed_outcome(rel: str, source: str, error: SogsError, output: str | None = None) -> dict:
    """A scene that failed before it could be compressed (unsafe key: no output folder; failed download)."""
    return {"scene": rel, "source": source, "output": output, "status": "failed", "error": error_record(error)}


class S3Input:
    """One s3:// input: list it, keep this host's scene keys, download each with its sidecars."""

    def __init__(self, text: str, label: str, dest: Path, s3, should_stop: Callable[[], bool] | None) -> None:
        self.uri = parse_s3_uri(text)
        self.label = label
        self.dest = dest
        self.s3 = s3
        self.should_stop = should_stop
        self.prefix = ""  # the prefix relative keys hang from
        self.sizes: dict[str, int] = {}  # every listed key -> its size

    def list_scenes(self) -> list[str]:
        """List the input; its scene keys, sorted."""
        if names_one_object(self.uri):
            self.prefix = self.uri.key.rsplit("/", 1)[0] + "/" if "/" in self.uri.key else ""
            size = self.s3.head(self.uri, self.should_stop)
            if size is None:
                raise InputNotFoundError(f"input {self.uri} does not exist")
            self.sizes = {self.uri.key: size}
        else:
            self.prefix = self.uri.as_prefix().key
            self.sizes = {o.key: o.size for o in self.s3.list_objects(self.uri.as_prefix(), self.should_stop)}
        return sorted(k for k in self.sizes if scene_stem(k.rsplit("/", 1)[-1]) is not None)

    def rel(self, key: str) -> str:
        """The scene's ``rel``: the key below the input prefix, with the input's label."""
        return _join(self.label, relative_key(key, self.prefix))

    def source(self, key: str) -> str:
        return str(S3Uri(self.uri.bucket, key))

    def fetch(self, key: str) -> Scene:
        """Download one scene key and its sidecars into their own folder; the scene's names come from the key."""
        key_parts(relative_key(key, self.prefix))  # an unsafe key fails here, before any download
        name = key.rsplit("/", 1)[-1]
        folder = local_scene_folder(self.dest, key)
        local = folder / fit_name(name, scene_suffix(name))
        self.s3.download_file(S3Uri(self.uri.bucket, key), local, self.sizes[key], self.should_stop)
        for sidecar in sidecars_for(key, self.sizes.keys()):
            own = sidecar.rsplit("/", 1)[-1] != "metadata.json"
            local_name = f"{scene_stem(local.name)}.metadata.json" if own else "metadata.json"
            self.s3.download_file(S3Uri(self.uri.bucket, sidecar), folder / local_name, self.sizes[sidecar],
                                  self.should_stop)
        return make_scene(local, self.rel(key), self.source(key))


def gather(inputs: list[str], work_dir: Path, s3_factory: Callable, hosts: list[str] | None = None,
           host: str = "local", shard_s3: bool = True, should_stop: Callable[[], bool] | None = None
           ) -> GatheredInputs:
    """This host's scenes from every input, downloading S3 inputs into ``work_dir``."""
    log = get_logger()
    hosts = hosts or [host]
    gathered = GatheredInputs()
    identities: dict[str, str] = {}  # listed scene URI -> output folder (for the sharding report)
    for label, text in zip(labels_for(inputs), inputs, strict=True):
        if not is_s3_uri(text):
            path = Path(text)
            if not path.exists():
                raise InputNotFoundError(f"input {text} does not exist")
            gathered.scenes += discover_scenes([(label, path, "")])
            continue
        gathered.self_listed = True
        one = S3Input(text, label, work_dir / "input" / (label or "main"), s3_factory(), should_stop)
        scene_keys = one.list_scenes()
        gathered.listed_scenes += len(scene_keys)
        mine = []
        for key in scene_keys:
            identities[one.source(key)] = plain_output(one.rel(key))
            if not shard_s3 or hosts[sharding.host_index(identities[one.source(key)], len(hosts))] == host:
                mine.append(key)
        log.info("s3_download", uri=text, scenes_listed=len(scene_keys), scenes_here=len(mine))
        for key in mine:
            rel, source = one.rel(key), one.source(key)
            try:
                gathered.scenes.append(one.fetch(key))
            except Interrupted:
                raise
            except UnsafeKeyError as error:
                log.error("unsafe_key_rejected", key=rel, reason=str(error))
                gathered.failed.append(failed_outcome(rel, source, error))
            except (SogsError, OSError) as error:
                failure = error if isinstance(error, SogsError) else OutputError(
                    f"cannot store the download of {source} in {work_dir}: {error.strerror or error}")
                log.error("download_failed", scene=rel, error=str(failure))
                gathered.failed.append(failed_outcome(rel, source, failure, fit_path(plain_output(rel))))
    if shard_s3 and len(hosts) > 1 and gathered.self_listed:
        gathered.sharding = sharding.assignment_report(identities, hosts, host)
    return gathered
