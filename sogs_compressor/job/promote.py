"""Put a finished scene in place in the output storage (``storage/``): moved into ``OUTPUT/<rel>/`` on the local
disk or uploaded below the scene's S3 prefix, for every layout, a Streamed SOG's tree of chunk folders included.

What a reader may rely on:

- ``compression_report.json`` (the marker) goes in last: a folder holding it is complete. An earlier marker is
  removed before anything else changes, so a promote cut short leaves a folder without a marker (done again by
  the next run), never an old marker beside new files.
- ``lod-meta.json`` is removed before any chunk is replaced or removed, and put in place after every chunk file
  (before the reports): a streaming viewer that finds it finds every chunk it names, with the bytes it describes.
- Files of an earlier output that the new one does not have (another layout's ``NAME.sog``, the chunk folders of
  an earlier run with more chunks) are removed; other scenes' output folders nested in this one (``a.ply`` ->
  ``a/``, ``a/b.ply`` -> ``a/b/``) are left alone.

Which subfolders count as this scene's: only a folder named as the Streamed SOG writer names chunk folders
(``L_I``, ``lod.chunks.ChunkFile.name``) that holds nothing but a SOG folder's files (``meta.json``, ``*.webp``)
and no subfolder. A nested scene's folder always holds its reports once complete, so it never looks like that;
an unfinished one that does (``a/0_0.ply`` written as ``--layout dir``, cut short before its reports) holds
nothing its next run does not write again. The earlier report and lod-meta.json are not the test: a promote cut
short has already removed them, and the chunk folders they named would then stay forever.

Clashes fail the scene before anything changes (``OutputClash``, exit 3): a chunk folder the new output needs
that holds anything else (another scene's output, scenes below it), and a scene whose own folder is, or lies
in, a chunk folder named by the ``lod-meta.json`` of the folder above that chunk folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sogs_compressor.errors import InputError, SogsError
from sogs_compressor.formats import LOD_META_NAME, chunk_contents, is_chunk_folder
from sogs_compressor.report.scene import JSON_NAME, TEXT_NAME
from sogs_compressor.storage.base import Storage, join_key

LOD_META_LIMIT = 64 * 1024 * 1024  # as read.lod.MAX_LOD_META_BYTES: a larger one is no Streamed SOG of ours


class OutputClash(InputError):
    """Two scenes' outputs would share files: a Streamed SOG's chunk folder is another scene's output folder."""

    exit_code = 3


def writing_order(paths: list[str]) -> list[str]:
    """Relative paths in the order they go in: the outputs (chunk files among them), then ``lod-meta.json``, then
    the text report, then the JSON report (the marker)."""
    last = (LOD_META_NAME, TEXT_NAME, JSON_NAME)
    return sorted(paths, key=lambda p: (last.index(p) + 1 if p in last else 0, p))


def staged_files(staging: Path) -> list[str]:
    """Every regular file below ``staging`` as a relative posix path (symlinks are not followed)."""
    return sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file() and not p.is_symlink())


@dataclass
class Existing:
    """What an output folder holds now, as far as replacing it matters."""

    files: set[str] = field(default_factory=set)  # names of the files directly in it
    chunk_folders: dict[str, set[str] | None] = field(default_factory=dict)
    """Subfolders named like chunk folders: their file names when they hold only a SOG folder's files and no
    subfolder (this scene's, to replace or remove), None otherwise (another scene's: never touched)."""


def plan_removals(new: list[str], existing: Existing, where: str) -> list[str]:
    """The relative paths of ``existing`` to remove before ``new`` goes in; ``OutputClash`` when a chunk folder
    the new output needs is another scene's."""
    wanted = set(new)
    needed = {path.split("/", 1)[0] for path in new if "/" in path}
    for folder in sorted(needed):
        if folder in existing.chunk_folders and existing.chunk_folders[folder] is None:
            raise OutputClash(f"output folder {where}/{folder}/ holds another scene's output, and this scene's "
                              f"Streamed SOG (--layout lod) needs it for a chunk; rename one")
    stale = [name for name in sorted(existing.files) if name not in wanted]
    for folder, files in sorted(existing.chunk_folders.items()):
        if files is not None:
            stale += [f"{folder}/{name}" for name in sorted(files) if f"{folder}/{name}" not in wanted]
    return stale


def names_chunk_folder(lod_meta: bytes | None, name: str) -> bool:
    """Whether a ``lod-meta.json`` (raw) names a chunk file in folder ``name``; an unreadable one names nothing
    (no viewer can stream it either)."""
    if lod_meta is None:
        return False
    from sogs_compressor.sog.meta import parse_json_object

    try:
        filenames = parse_json_object(lod_meta, LOD_META_NAME, LOD_META_LIMIT).get("filenames")
    except SogsError:
        return False
    return isinstance(filenames, list) and any(isinstance(f, str) and f.startswith(f"{name}/") for f in filenames)


class SceneFolder:
    """A scene's output folder ``rel`` (below the output storage's root), filled with the files of ``staging``:
    moved there on the local disk, uploaded to S3."""

    def __init__(self, storage: Storage, staging: Path, rel: str) -> None:
        self.storage, self.staging, self.rel = storage, staging, rel

    def existing(self) -> Existing:
        """What the folder holds now: its files, and what its chunk-named subfolders hold."""
        found = Existing()
        objects, folders = self.storage.list_level(self.rel)
        found.files = {o.key[len(self.rel) + 1:] for o in objects}
        for folder in folders:
            if is_chunk_folder(folder):
                inner, deeper = self.storage.list_level(join_key(self.rel, folder))
                found.chunk_folders[folder] = chunk_contents([o.key.rsplit("/", 1)[-1] for o in inner], bool(deeper))
        return found

    def lod_meta_of(self, folder: str) -> bytes | None:
        """The raw ``lod-meta.json`` of ``folder`` (relative to the output root), None when there is none."""
        return self.storage.read(join_key(folder, LOD_META_NAME), LOD_META_LIMIT)

    def remove(self, rel: str) -> None:
        self.storage.delete(join_key(self.rel, rel))

    def put(self, rel: str) -> None:
        self.storage.upload(self.staging / rel, join_key(self.rel, rel), consume=True)


def check_not_in_a_chunk(destination: SceneFolder) -> None:
    """``OutputClash`` when the scene's folder is, or lies in, a chunk folder named by the ``lod-meta.json`` of
    the folder above that chunk folder (``a/0_1.ply`` or ``a/0_1/c.ply`` beside ``a.ply``'s Streamed SOG)."""
    parts = destination.rel.split("/")
    for depth in range(1, len(parts)):  # the output root itself holds no Streamed SOG of the job's
        if not is_chunk_folder(parts[depth]):
            continue
        above = "/".join(parts[:depth])
        if names_chunk_folder(destination.lod_meta_of(above), parts[depth]):
            where = "is" if depth == len(parts) - 1 else f"lies in {above}/{parts[depth]}/,"
            raise OutputClash(f"output folder {destination.rel}/ {where} a chunk folder of the Streamed SOG in "
                              f"{above}/ (its {LOD_META_NAME} names it); rename one")


def promote(destination: SceneFolder, staged: list[str]) -> None:
    """Replace what ``destination`` holds by the ``staged`` files (relative paths), in the order the module
    docstring gives; a clash is found before anything changes."""
    check_not_in_a_chunk(destination)
    existing = destination.existing()
    stale = plan_removals(staged, existing, destination.rel)
    first = [rel for rel in (JSON_NAME, LOD_META_NAME) if rel in existing.files]
    for rel in first + [rel for rel in stale if rel not in first]:
        destination.remove(rel)  # a chunk folder this empties goes with its last file
    for rel in writing_order(staged):
        destination.put(rel)
