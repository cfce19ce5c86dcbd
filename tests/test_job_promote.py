"""job/promote.py on real folders: a scene's files, a Streamed SOG's chunk folders among them, replace an earlier
output in the right order, stale files go, other scenes' folders stay, clashes change nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sogs_compressor.formats import CHUNK_FOLDER
from sogs_compressor.job import cache
from sogs_compressor.job.batch import chunk_folder_clashes, make_scene
from sogs_compressor.job.promote import (
    OutputClash,
    SceneFolder,
    promote,
    staged_files,
    writing_order,
)
from sogs_compressor.report.hashing import sha256_file
from sogs_compressor.storage.local import LocalStorage

CHUNK_FILES = ("meta.json", "means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp")
REPORTS = ("compression_report.txt", "compression_report.json")


def write_files(folder: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def lod_output(chunks: list[str], tag: str) -> dict[str, str]:
    """A Streamed SOG scene folder as the codec and the job leave it in staging (contents name the run)."""
    files = {f"{chunk}/{name}": f"{tag} {chunk}/{name}" for chunk in chunks for name in CHUNK_FILES}
    files["lod-meta.json"] = json.dumps({"filenames": [f"{chunk}/meta.json" for chunk in chunks], "run": tag})
    files["a.html"] = f"{tag} page"
    files.update({name: f"{tag} {name}" for name in REPORTS})
    return files


def local_folder(staging: Path, root: Path, rel: str) -> SceneFolder:
    return SceneFolder(LocalStorage(root), staging, rel)


class Recorded(SceneFolder):
    """A local scene folder that records what it does, and can fail on one put (a promote cut short)."""

    def __init__(self, staging: Path, root: Path, rel: str, fail_on: str | None = None) -> None:
        super().__init__(LocalStorage(root), staging, rel)
        self.steps: list[tuple[str, str]] = []
        self.fail_on = fail_on

    def remove(self, rel: str) -> None:
        self.steps.append(("remove", rel))
        super().remove(rel)

    def put(self, rel: str) -> None:
        if rel == self.fail_on:
            raise OSError(f"disk full while moving {rel}")
        self.steps.append(("put", rel))
        super().put(rel)


def stage(tmp_path: Path, files: dict[str, str]) -> Path:
    """A fresh staging folder (the job removes a scene's staging folder whatever happens)."""
    staging = tmp_path / "out" / ".sogs-staging" / "s"
    shutil.rmtree(staging, ignore_errors=True)
    write_files(staging, files)
    return staging


@pytest.fixture
def earlier(tmp_path: Path) -> Path:
    """``out/a/`` after earlier runs: a bundle layout's files, a lod run with more chunks, and nested scenes."""
    final = tmp_path / "out" / "a"
    write_files(final, {
        "a.sog": "old bundle", "meta.json": "old meta", "sh0.webp": "old texture",
        "lod-meta.json": "old lod-meta", "compression_report.json": "old marker", "compression_report.txt": "old",
        **{f"{chunk}/{name}": "old chunk" for chunk in ("0_0", "0_1", "0_2", "1_0", "1_1") for name in CHUNK_FILES},
        "0_0/shN_labels.webp": "old chunk file the new chunk 0_0 does not have",
        # other scenes' folders: a/b.ply's output, a/2_7.ply's complete output (named like a chunk folder),
        # and a chunk-like folder with a scene below it
        "b/b.sog": "b", "b/compression_report.json": "b marker",
        "2_7/meta.json": "2_7 meta", "2_7/compression_report.json": "2_7 marker",
        "3_0/x/x.sog": "x", "3_0/x/compression_report.json": "x marker",
    })
    return final


def test_chunk_folder_pattern_is_the_writers(tmp_path):
    """The rule that tells a chunk folder from a scene's is the name ``lod.chunks`` gives chunk files."""
    from sogs_compressor.lod.chunks import partition
    from sogs_compressor.lod.pyramid import build_pyramid
    from sogs_compressor.sample import generate_scene

    scene = generate_scene(3000, sh_degree=0, seed=3)
    levels = build_pyramid(scene, [3000, 1500], seed=0)
    names = [f.name for f in partition(levels, chunk_count=1, chunk_extent=16.0, chunk_min=8).files]
    assert len(names) > 2
    for name in names:
        folder, file = name.split("/")
        assert CHUNK_FOLDER.fullmatch(folder) and file == "meta.json"
    assert not any(CHUNK_FOLDER.fullmatch(n) for n in ("a", "0_0x", "x_1", "0-0", "0_", "_0", "b/0_0"))


def test_writing_order_puts_lod_meta_after_the_chunks_and_the_marker_last():
    order = writing_order(["compression_report.json", "lod-meta.json", "z.html", "1_0/meta.json",
                           "compression_report.txt", "0_0/sh0.webp", "a.preview.png"])
    assert order == ["0_0/sh0.webp", "1_0/meta.json", "a.preview.png", "z.html", "lod-meta.json",
                     "compression_report.txt", "compression_report.json"]


def test_promote_replaces_an_earlier_output_and_leaves_nested_scenes(tmp_path, earlier):
    new = lod_output(["0_0", "0_1", "1_0"], "new")
    staging = stage(tmp_path, new)
    others = {k: v for k, v in tree(earlier).items() if k.startswith(("b/", "2_7/", "3_0/"))}
    destination = Recorded(staging, tmp_path / "out", "a")
    promote(destination, staged_files(staging))
    assert tree(earlier) == {**new, **others}  # stale files and chunk folders gone, other scenes untouched
    assert not (earlier / "0_2").exists() and not (earlier / "1_1").exists()
    # order: the old marker first, then the old lod-meta.json, then the stale files; every chunk file before the
    # new lod-meta.json, which goes before the reports, the marker last
    steps = destination.steps
    assert steps[:2] == [("remove", "compression_report.json"), ("remove", "lod-meta.json")]
    removed = [rel for what, rel in steps if what == "remove"]
    assert {"a.sog", "meta.json", "sh0.webp", "0_0/shN_labels.webp", "0_2/meta.json", "1_1/sh0.webp"} <= set(removed)
    assert not [rel for rel in removed if rel.startswith(("b/", "2_7/", "3_0/"))]
    puts = [rel for what, rel in steps if what == "put"]
    assert steps.index(("put", puts[0])) > max(i for i, (what, _) in enumerate(steps) if what == "remove")
    assert puts[-3:] == ["lod-meta.json", *REPORTS]
    assert {rel for rel in puts[:-3] if "/" in rel} == {rel for rel in new if "/" in rel}


def test_a_promote_cut_short_leaves_no_marker_and_the_next_one_cleans_up(tmp_path, earlier):
    staging = stage(tmp_path, lod_output(["0_0", "0_1", "0_2", "0_3", "1_0"], "cut"))
    with pytest.raises(OSError, match="disk full"):
        promote(Recorded(staging, tmp_path / "out", "a", fail_on="0_3/quats.webp"), staged_files(staging))
    left = tree(earlier)
    assert "compression_report.json" not in left and "lod-meta.json" not in left  # reads as incomplete
    assert left["0_2/meta.json"] == "cut 0_2/meta.json"  # some new chunks were in place
    # the rerun writes fewer chunks: the half-promoted ones of the cut run do not survive beside it
    new = lod_output(["0_0", "1_0"], "rerun")
    staging = stage(tmp_path, new)
    promote(local_folder(staging, tmp_path / "out", "a"), staged_files(staging))
    assert {k: v for k, v in tree(earlier).items() if not k.startswith(("b/", "2_7/", "3_0/"))} == new


def test_another_scenes_folder_where_a_chunk_goes_is_a_clash_and_nothing_changes(tmp_path, earlier):
    before = tree(earlier)
    staging = stage(tmp_path, lod_output(["0_0", "2_7"], "new"))  # 2_7/ holds a/2_7.ply's output
    with pytest.raises(OutputClash, match=r"a/2_7/ holds another scene's output"):
        promote(local_folder(staging, tmp_path / "out", "a"), staged_files(staging))
    assert tree(earlier) == before  # the old marker included
    staging = stage(tmp_path, lod_output(["3_0"], "new"))  # a scene below 3_0/
    with pytest.raises(OutputClash):
        promote(local_folder(staging, tmp_path / "out", "a"), staged_files(staging))
    assert tree(earlier) == before


def test_a_scene_folder_that_is_a_chunk_folder_above_is_a_clash(tmp_path, earlier):
    """a/0_1.ply (any layout) would replace a/0_1/, a chunk of a's Streamed SOG: refused, a keeps its chunk."""
    (earlier / "lod-meta.json").write_text(json.dumps({"filenames": ["0_0/meta.json", "0_1/meta.json"]}))
    before = tree(earlier)
    staging = stage(tmp_path, {"0_1.sog": "bundle", **{name: "r" for name in REPORTS}})
    with pytest.raises(OutputClash, match=r"a/0_1/ is a chunk folder of the Streamed SOG in a/ \(its lod-meta"):
        promote(local_folder(staging, tmp_path / "out", "a/0_1"), staged_files(staging))
    with pytest.raises(OutputClash, match=r"a/0_1/c/ lies in a/0_1/, a chunk folder"):
        promote(local_folder(staging, tmp_path / "out", "a/0_1/c"), staged_files(staging))
    assert tree(earlier) == before
    # a chunk-named folder that the lod-meta.json above does not name is an ordinary scene folder
    promote(local_folder(staging, tmp_path / "out", "a/1_1"), staged_files(staging))
    assert {p.name for p in (earlier / "1_1").iterdir()} == {"0_1.sog", *REPORTS}


def test_promote_refuses_a_folder_outside_the_output(tmp_path):
    from sogs_compressor.errors import OutputError

    staging = stage(tmp_path, {"a.sog": "bundle", **{name: "r" for name in REPORTS}})
    with pytest.raises(OutputError, match="outside"):
        promote(local_folder(staging, tmp_path / "out", "../elsewhere"), staged_files(staging))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="outside the output folder"):
        promote(local_folder(staging, tmp_path / "out", "link"), staged_files(staging))
    assert list((tmp_path / "elsewhere").iterdir()) == [] and sorted(staged_files(staging)) == sorted(
        ["a.sog", *REPORTS])


def test_in_one_batch_a_scene_in_a_chunk_folders_place_fails_before_compressing(tmp_path):
    scenes = [make_scene(tmp_path / rel, rel, rel) for rel in ("a.ply", "a/0_0.ply", "a/b.ply", "x/1_2.ply",
                                                              "A/12_3.sog", "a/0_0/c.ply")]
    clashes = chunk_folder_clashes(scenes)
    # x/ is no scene's folder; A/ and a/ are one folder to people
    assert set(clashes) == {"a/0_0.ply", "A/12_3.sog", "a/0_0/c.ply"}
    assert clashes["a/0_0.ply"] == ("output folder a/0_0/ would be a chunk folder of a.ply's Streamed SOG "
                                    "(--layout lod writes a/L_I/ chunk folders); rename one")
    assert clashes["a/0_0/c.ply"].startswith("output folder a/0_0/c/ would lie in a/0_0/, a chunk folder of a.ply")


def test_cache_takes_chunk_files_below_the_scene_folder_and_nothing_outside(tmp_path):
    folder = tmp_path / "a"
    write_files(folder, {"lod-meta.json": "{}", "0_0/meta.json": "chunk", "compression_report.txt": "r"})
    outputs = [{"name": rel, "bytes": (folder / rel).stat().st_size, "sha256": sha256_file(folder / rel)}
               for rel in ("lod-meta.json", "0_0/meta.json")]
    report = {"status": "ok", "input": {"sha256": "abc"}, "cache_key": "k", "outputs": outputs}
    (folder / "compression_report.json").write_text(json.dumps(report))
    assert cache.find(LocalStorage(tmp_path), "a", "abc", "k") is not None
    (folder / "0_0/meta.json").write_text("CHUNK")  # same size, other bytes
    assert cache.find(LocalStorage(tmp_path), "a", "abc", "k") is None
    (folder / "0_0/meta.json").write_text("chunk")
    write_files(tmp_path, {"outside.json": "{}"})
    for name in ("../outside.json", "/etc/hostname", "0_0/../../outside.json", "0_0//meta.json"):
        bad = {**report, "outputs": [*outputs, {"name": name, "bytes": 2, "sha256": "x"}]}
        (folder / "compression_report.json").write_text(json.dumps(bad))
        assert cache.find(LocalStorage(tmp_path), "a", "abc", "k") is None, name
