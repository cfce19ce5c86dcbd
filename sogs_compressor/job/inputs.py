"""Turn the configured inputs (local folders/files or s3:// URIs) into local roots the batch can walk.

S3 inputs are listed by the job itself ("self-listing"): with several hosts the scene keys are sharded (sorted,
every N-th), so each host downloads only its share. Keys that would escape the download folder are refused and
reported as failed scenes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sogs_compressor.errors import InputNotFoundError
from sogs_compressor.fetch.paths import relative_key
from sogs_compressor.fetch.uri import is_s3_uri, names_one_object, parse_s3_uri
from sogs_compressor.job.batch import scene_stem
from sogs_compressor.job.log import get_logger


@dataclass
class GatheredInputs:
    roots: list[tuple[str, Path, str]] = field(default_factory=list)  # (label, local root, source)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (key or path, reason)
    listed_scenes: int = 0  # scene keys seen by self-listing, before sharding (0 for local inputs)
    self_listed: bool = False


def shard(keys: list[str], host_index: int, host_count: int) -> list[str]:
    """This host's share of ``keys``: sorted, every ``host_count``-th starting at ``host_index``."""
    if host_count <= 1:
        return sorted(keys)
    return [k for i, k in enumerate(sorted(keys)) if i % host_count == host_index]


def sidecars_for(scene_key: str, all_keys: set[str]) -> list[str]:
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


def gather(inputs: list[str], work_dir: Path, s3_factory: Callable, host_index: int = 0, host_count: int = 1,
           shard_s3: bool = True) -> GatheredInputs:
    """Local roots for every input, downloading S3 inputs into ``work_dir``."""
    log = get_logger()
    gathered = GatheredInputs()
    for label, text in zip(labels_for(inputs), inputs, strict=True):
        if not is_s3_uri(text):
            path = Path(text)
            if not path.exists():
                raise InputNotFoundError(f"input {text} does not exist")
            gathered.roots.append((label, path, ""))
            continue
        uri = parse_s3_uri(text)
        s3 = s3_factory()
        dest = work_dir / "input" / (label or "main")
        gathered.self_listed = True
        if names_one_object(uri):
            result = s3.download(uri, dest)
            gathered.listed_scenes += 1
            source_prefix = text.rsplit("/", 1)[0]
        else:
            prefix = uri.as_prefix()
            keys = [obj.key for obj in s3.list_objects(prefix)]
            scene_keys = [k for k in keys if scene_stem(k.rsplit("/", 1)[-1]) is not None]
            gathered.listed_scenes += len(scene_keys)
            mine = shard(scene_keys, host_index, host_count) if shard_s3 else sorted(scene_keys)
            key_set = set(keys)
            wanted = sorted({*mine, *(s for k in mine for s in sidecars_for(k, key_set))})
            log.info("s3_download", uri=str(prefix), scenes_listed=len(scene_keys), scenes_here=len(mine))
            result = s3.download_keys(uri.bucket, prefix.key, wanted, dest)
            source_prefix = str(prefix).rstrip("/")
            gathered.rejected.extend(
                (f"{label}/{relative_key(k, prefix.key)}" if label else relative_key(k, prefix.key), reason)
                for k, reason in result.rejected)
            result.rejected = []
        gathered.rejected.extend(result.rejected)
        gathered.roots.append((label, dest, source_prefix))
    for key, reason in gathered.rejected:
        log.error("unsafe_key_rejected", key=key, reason=reason)
    return gathered
