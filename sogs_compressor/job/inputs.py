"""Turn the configured inputs (local folders/files or s3:// URIs) into the scenes of this host.

Every input is listed through its storage (``storage/``). A local input's files are all this host's and are
read where they are. S3 inputs are listed by the job itself ("self-listing"): with several hosts each scene key
goes to the host chosen by ``sharding.host_index`` (a hash of the scene's name, never its position in a
listing). Each scene key of this host is downloaded into a folder of its own,
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
from sogs_compressor.fetch.paths import UnsafeKeyError, key_parts
from sogs_compressor.job import sharding
from sogs_compressor.job.batch import (
    Scene,
    make_scene,
    plain_output,
    scene_stem,
    scene_suffix,
)
from sogs_compressor.job.failure import error_record
from sogs_compressor.job.log import get_logger
from sogs_compressor.job.naming import fit_name, fit_path
from sogs_compressor.storage.base import Storage
from sogs_compressor.storage.location import open_input

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


class ListedInput:
    """One input: the scene objects its storage holds, each made a local file (a remote one is downloaded, with
    its sidecars, into a folder of its own)."""

    def __init__(self, storage: Storage, key: str, label: str, dest: Path) -> None:
        self.storage = storage
        self.key = key  # the one object the input names, "" when it names a folder or prefix
        self.label = label
        self.dest = dest
        self.sizes: dict[str, int] = {}  # every listed key -> its size

    def list_scenes(self) -> list[str]:
        """List the input; its scene keys, in the storage's order."""
        if self.key:
            found = self.storage.head(self.key)
            if found is None:
                raise InputNotFoundError(f"input {self.storage.describe(self.key)} does not exist")
            listed = [found]
        else:
            listed = self.storage.list()
        self.sizes = {o.key: o.size for o in listed}
        return [k for k in self.sizes if scene_stem(k.rsplit("/", 1)[-1]) is not None]

    def rel(self, key: str) -> str:
        """The scene's ``rel``: the key below the input, with the input's label."""
        return _join(self.label, key)

    def source(self, key: str) -> str:
        return self.storage.describe(key)

    def fetch(self, key: str) -> Scene:
        """The scene of one key: its file read where it is on this machine, or downloaded (after its key is
        checked) with its sidecars into their own folder; the scene's names come from the key."""
        local = self.storage.local_file(key)
        if local is None:
            local = self._download(key)
        return make_scene(local, self.rel(key), self.source(key))

    def _download(self, key: str) -> Path:
        key_parts(key)  # an unsafe key fails here, before any download
        name = key.rsplit("/", 1)[-1]
        folder = local_scene_folder(self.dest, key)
        local = folder / fit_name(name, scene_suffix(name))
        self.storage.download(key, local, self.sizes[key])
        for sidecar in sidecars_for(key, self.sizes.keys()):
            own = sidecar.rsplit("/", 1)[-1] != "metadata.json"
            local_name = f"{scene_stem(local.name)}.metadata.json" if own else "metadata.json"
            self.storage.download(sidecar, folder / local_name, self.sizes[sidecar])
        return local


def gather(inputs: list[str], work_dir: Path, s3_factory: Callable, hosts: list[str] | None = None,
           host: str = "local", shard_s3: bool = True, should_stop: Callable[[], bool] | None = None
           ) -> GatheredInputs:
    """This host's scenes from every input, downloading remote ones into ``work_dir``."""
    log = get_logger()
    hosts = hosts or [host]
    gathered = GatheredInputs()
    identities: dict[str, str] = {}  # listed scene URI -> output folder (for the sharding report)
    for label, text in zip(labels_for(inputs), inputs, strict=True):
        storage, key = open_input(text, s3_factory, should_stop)
        one = ListedInput(storage, key, label, work_dir / "input" / (label or "main"))
        scene_keys = one.list_scenes()
        if not storage.remote:  # files on this host's disk: all of them are this host's (SageMaker shared them)
            gathered.scenes += [one.fetch(key) for key in scene_keys]
            continue
        gathered.self_listed = True
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
