"""The input-format table (``read/registry.py``): each format is recognised by content and read by its own reader,
the folder walks take exactly the table's endings, and sniffing tries formats in the table's order."""

from __future__ import annotations

import json

import pytest
from plyfiles import encode_compressed, random_splats, write_compressed_parts
from s3server import write_ply
from sogfiles import write_v1, write_v2

from sogs_compressor.errors import NotAPlyError, UsageError
from sogs_compressor.formats import LOD_META_NAME, META_NAME
from sogs_compressor.output_target import output_name
from sogs_compressor.read import detect_format, read_scene
from sogs_compressor.read.registry import (
    INPUT_FORMATS,
    format_named,
    scene_file_names,
    scene_stem,
    scene_suffixes,
    suffix_list,
)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """One file (or folder) of every format, under names that do not give the format away."""
    root = tmp_path_factory.mktemp("formats")
    splats = random_splats(256, sh_degree=1, seed=3)
    made = {
        "ply": write_ply(root / "plain.bin", n=64),
        "compressed_ply": write_compressed_parts(root / "packed.bin", encode_compressed(splats)),
        "sog": write_v2(splats, root / "v2", layout="dir"),
        "sog_v1": write_v1(random_splats(256, seed=4), root / "v1"),
    }
    lod = root / "lod"
    lod.mkdir()
    (lod / LOD_META_NAME).write_text("{}")  # recognised by its name; its reader judges the content
    made["lod"] = lod
    return made


def test_the_table_lists_each_format_once_and_each_ending_once():
    names = [f.name for f in INPUT_FORMATS]
    suffixes = [s for f in INPUT_FORMATS for s in f.suffixes]
    assert len(names) == len(set(names)) and len(suffixes) == len(set(suffixes))
    assert {format_named(name).name for name in names} == set(names)
    with pytest.raises(KeyError):
        format_named("obj")


@pytest.mark.parametrize("name", [f.name for f in INPUT_FORMATS])
def test_every_format_is_recognised_by_content_and_read_by_its_reader(samples, name):
    path = samples[name]
    assert detect_format(path) == name
    if name == "lod":
        return  # an empty manifest: recognised, refused by the reader (tests/test_lod.py reads real ones)
    scene = read_scene(path)
    assert scene.format == name and scene.splats.count > 0


def test_a_folder_holding_both_manifests_is_a_sog_folder(samples, tmp_path):
    folder = tmp_path / "both"
    folder.mkdir()
    for item in samples["sog"].iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    (folder / LOD_META_NAME).write_text("{}")
    assert detect_format(folder) == "sog"


def test_a_file_named_lod_meta_is_a_streamed_sog_whatever_it_holds(tmp_path):
    path = tmp_path / LOD_META_NAME
    path.write_text(json.dumps({"version": 2, "means": {}}))
    assert detect_format(path) == "lod"


def test_only_a_format_with_levels_takes_a_level(samples):
    with pytest.raises(UsageError, match="not a Streamed SOG"):
        read_scene(samples["ply"], lod=0)


def test_unknown_content_names_the_formats_of_the_table(tmp_path):
    path = tmp_path / "x.ply"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    with pytest.raises(NotAPlyError, match=r"not a PLY, compressed PLY or SOG file"):
        detect_format(path)
    with pytest.raises(NotAPlyError, match=f"without a {META_NAME} or {LOD_META_NAME}"):
        detect_format(tmp_path)


def test_folder_walks_take_the_table_endings_longest_first():
    assert scene_suffixes() == (".compressed.ply", ".ply", ".sog")
    assert suffix_list() == ".ply, .compressed.ply, .sog"
    assert scene_stem("Room.Compressed.PLY") == "Room" and scene_stem("a.sog") == "a"
    assert scene_stem("notes.txt") is None and scene_stem(".ply") is None
    assert scene_file_names() == (LOD_META_NAME, META_NAME)


def test_output_names_follow_the_table(tmp_path):
    assert output_name("a/Room.compressed.ply") == "Room" and output_name("b.SOG") == "b"
    folder = tmp_path / "garden"
    folder.mkdir()
    assert output_name(folder / META_NAME) == "garden" == output_name(folder / LOD_META_NAME)
