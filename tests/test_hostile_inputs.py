"""Hostile and damaged inputs (issue 12, items 1-13), one regression test per item.

Each reproducer runs the real CLI under an address-space limit and a timeout and must give its documented exit
code with exactly one line on stderr, or, where the input is harmless, read correctly with nothing on stderr.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from clirun import assert_one_line_error, run_cli
from forged import png_claiming, vp8l_garbage, webp_claiming
from PIL import Image
from plyfiles import (
    encode_compressed,
    expected_splats,
    random_splats,
    write_compressed_parts,
    write_ply_variant,
)
from sogfiles import write_v2
from ziplayout import layout, set_entry_field

from sogs_compressor.errors import ShCountError
from sogs_compressor.read import read_scene
from sogs_compressor.read.sog import read_sog
from sogs_compressor.sog.webp import webp_size

TEXTURES = ("means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp", "shN_centroids.webp",
            "shN_labels.webp")


@pytest.fixture(scope="module")
def splats():
    return random_splats(300, sh_degree=1, seed=12)


@pytest.fixture(scope="module")
def sog_folder(tmp_path_factory, splats):
    """A v2 SOG of ``splats``: meta.json, the textures and scene.sog (stored entries) side by side."""
    return write_v2(splats, tmp_path_factory.mktemp("sog"))


def _sog_copy(sog_folder: Path, tmp_path: Path, edit=None, files: dict[str, bytes] | None = None) -> Path:
    """A copy of the SOG folder without its bundle; ``edit`` rewrites meta.json's text, ``files`` replaces files."""
    target = tmp_path / "scene"
    shutil.copytree(sog_folder, target)
    (target / "scene.sog").unlink()
    if edit:
        (target / "meta.json").write_text(edit((target / "meta.json").read_text()))
    for name, data in (files or {}).items():
        (target / name).write_bytes(data)
    return target


def _deflated_bundle(sog_folder: Path, path: Path) -> Path:
    """The SOG as a bundle of deflated entries (splat-transform stores them; other zip tools deflate)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in (*TEXTURES, "meta.json"):
            archive.writestr(name, (sog_folder / name).read_bytes())
    return path


def test_01_element_count_of_thousands_of_digits(tmp_path, splats):
    good = write_ply_variant(tmp_path / "good.ply", splats).read_bytes()
    huge = tmp_path / "huge.ply"
    huge.write_bytes(good.replace(b"element vertex 300\n", b"element vertex " + b"9" * 5000 + b"\n"))
    assert_one_line_error(run_cli(["info", str(huge)]), 11, "5000 digits")
    padded = tmp_path / "padded.ply"  # leading zeros are not digits that count
    padded.write_bytes(good.replace(b"element vertex 300\n", b"element vertex " + b"0" * 5000 + b"300\n"))
    assert read_scene(padded).splats.count == 300


def test_02_f_rest_names_are_taken_as_written(tmp_path, splats):
    good = write_ply_variant(tmp_path / "good.ply", splats).read_bytes()
    renamed = tmp_path / "renamed.ply"
    renamed.write_bytes(good.replace(b"property float f_rest_8\n", b"property float f_rest_08\n"))
    run = run_cli(["info", "--json", str(renamed)])
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert json.loads(run.stdout)["sh_degree"] == 1
    np.testing.assert_array_equal(read_scene(renamed).splats.f_rest, expected_splats(splats).f_rest)

    twice = tmp_path / "twice.ply"
    twice.write_bytes(good.replace(b"property float f_rest_7\n", b"property float f_rest_08\n"))
    assert_one_line_error(run_cli(["info", str(twice)]), 13, "f_rest_8", "f_rest_08")
    with pytest.raises(ShCountError, match="f_rest_7 is missing"):
        bad = tmp_path / "gap.ply"
        bad.write_bytes(good.replace(b"property float f_rest_7\n", b"property float f_rest_9\n"))
        read_scene(bad)


@pytest.mark.parametrize(
    ("pattern", "replacement", "words"),
    [
        (r'"count":300', '"count":Infinity', ("Infinity",)),
        (r'"count":300', '"count":NaN', ("NaN",)),
        (r'"count":300', '"count":1e400', ("count",)),
        (r'"mins":\[[^,]*', '"mins":[' + "9" * 400, ("400 digits",)),
        (r'"codebook":\[[^,]*', '"codebook":[' + "9" * 400, ("400 digits",)),
        (r'"codebook":\[[^,]*', '"codebook":[1e39', ("codebook[0]", "outside")),
        (r'"maxs":\[[^,]*', '"maxs":[1e300', ("means.maxs[0]", "outside")),
    ],
    ids=["count-infinity", "count-nan", "count-1e400", "mins-400-digits", "codebook-400-digits",
         "codebook-beyond-float32", "maxs-1e300"],
)
def test_03_meta_numbers_out_of_range(tmp_path, sog_folder, pattern, replacement, words):
    folder = _sog_copy(sog_folder, tmp_path, lambda text: re.sub(pattern, replacement, text, count=1))
    assert_one_line_error(run_cli(["info", str(folder / "meta.json")]), 17, *words)


@pytest.mark.parametrize("asset", ['"x"', "true", "[1]", "null", '{"generator":[1]}'])
def test_04_asset_of_any_type_is_ignored(tmp_path, sog_folder, asset):
    folder = _sog_copy(sog_folder, tmp_path, lambda text: re.sub(r'"asset":\{[^}]*\}', f'"asset":{asset}', text))
    scene = read_sog(folder)
    assert scene.splats.count == 300 and scene.header["meta"]["generator"] is None
    run = run_cli(["info", str(folder)])
    assert run.returncode == 0 and run.stderr == "", run.stderr


def test_05_deeply_nested_meta(tmp_path, sog_folder):
    folder = _sog_copy(sog_folder, tmp_path, lambda text: "[" * 100_000)
    assert_one_line_error(run_cli(["info", str(folder)]), 17, "nested too deeply")


def test_06_encrypted_entry(tmp_path, sog_folder):
    bundle = bytearray((sog_folder / "scene.sog").read_bytes())
    entries, _ = layout(bytes(bundle))
    set_entry_field(bundle, entries[0], "flags", 0x1)
    path = tmp_path / "encrypted.sog"
    path.write_bytes(bundle)
    assert_one_line_error(run_cli(["info", str(path)]), 17, "encrypted")


def test_07_corrupt_deflate_stream(tmp_path, sog_folder):
    path = _deflated_bundle(sog_folder, tmp_path / "deflated.sog")
    assert read_sog(path).splats.count == 300
    bundle = bytearray(path.read_bytes())
    entry = next(e for e in layout(bytes(bundle))[0] if e.name == "quats.webp")
    bundle[entry.data] |= 0b111  # final block of the reserved type 3: zlib refuses it ("invalid block type")
    path.write_bytes(bundle)
    assert_one_line_error(run_cli(["info", str(path)]), 17, "quats.webp", "cannot be read")


def test_08_texture_sizes_are_checked_before_decoding(tmp_path, sog_folder):
    huge = webp_claiming(16383, 16383)
    assert len(huge) < 40 and webp_size(huge, "x") == (16383, 16383)
    folder = _sog_copy(sog_folder, tmp_path, files=dict.fromkeys(TEXTURES, huge))
    run = run_cli(["info", str(folder)], timeout=30)
    assert_one_line_error(run, 17, "means_l.webp", "16383x16383")
    assert run.seconds < 10

    wide = _sog_copy(sog_folder, tmp_path / "wide", files={"shN_centroids.webp": webp_claiming(192, 2000)})
    assert_one_line_error(run_cli(["info", str(wide)]), 17, "shN_centroids.webp", "2000 rows")


@pytest.mark.parametrize("lossless", [True, False])
@pytest.mark.parametrize("mode", ["RGBA", "RGB"])
def test_08_webp_size_from_every_header_kind(lossless, mode):
    buffer = io.BytesIO()
    Image.new(mode, (37, 1021)).save(buffer, "WEBP", lossless=lossless, exif=b"Exif\0\0" if not lossless else b"")
    assert webp_size(buffer.getvalue(), "t.webp") == (37, 1021)


def test_09_ascii_token_length_does_not_size_memory(tmp_path):
    splats = random_splats(5000, seed=9)
    text = write_ply_variant(tmp_path / "a.ply", splats, encoding="ascii").read_bytes()
    start = text.index(b"end_header\n") + len(b"end_header\n")
    first = text.index(b" ", start)
    long_number = tmp_path / "long.ply"  # 2 MB of digits: padding every token to it would need ~230 GB
    long_number.write_bytes(text[:start] + b"0." + b"1" * 2_000_000 + text[first:])
    run = run_cli(["info", "--json", str(long_number)], timeout=30)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert json.loads(run.stdout)["count"] == 5000
    assert read_scene(long_number).splats.positions[0, 0] == np.float32(0.1111111111111111)

    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(text[:start] + b"x" * 2_000_000 + text[first:])
    assert_one_line_error(run_cli(["info", str(garbage)], timeout=30), 10, "not a number")


def _bomb_stream(size: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``size`` zero bytes (16 MiB blocks repeated) and the CRC-32 of those bytes."""
    block = 1 << 24
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc, zeros = 0, bytes(block)
    for _ in range(size // block):
        crc = zlib.crc32(zeros, crc)
    return piece * (size // block) + b"\x03\x00", crc  # + an empty final block


@pytest.mark.parametrize("declared", ["honest", "lying"])
def test_10_entry_that_inflates_to_a_gigabyte(tmp_path, sog_folder, declared):
    stream, crc = _bomb_stream(1 << 30)
    path = tmp_path / "bomb.sog"
    with zipfile.ZipFile(path, "w") as archive:  # stored, then re-labelled as deflate below
        for name in (*TEXTURES, "meta.json"):
            archive.writestr(name, stream if name == "means_l.webp" else (sog_folder / name).read_bytes())
    bundle = bytearray(path.read_bytes())
    entry = next(e for e in layout(bytes(bundle))[0] if e.name == "means_l.webp")
    set_entry_field(bundle, entry, "method", zipfile.ZIP_DEFLATED)
    if declared == "honest":
        set_entry_field(bundle, entry, "size", 1 << 30)
        set_entry_field(bundle, entry, "crc", crc)
    else:  # a size the reader accepts: reading stops there and the CRC of what was read is wrong
        set_entry_field(bundle, entry, "size", len((sog_folder / "means_l.webp").read_bytes()))
    path.write_bytes(bundle)
    assert path.stat().st_size < 2_000_000
    run = run_cli(["info", str(path)], timeout=30)
    assert_one_line_error(run, 17, "means_l.webp")
    assert run.seconds < 10


def test_11_no_warning_lines(tmp_path, sog_folder, splats):
    folder = _sog_copy(sog_folder, tmp_path / "png", files={"means_l.webp": png_claiming(20000, 20000)})
    assert_one_line_error(run_cli(["info", str(folder)]), 17, "means_l.webp", "RIFF")

    folder = _sog_copy(sog_folder, tmp_path / "maxs", lambda t: re.sub(r'"maxs":\[[^\]]*\]', '"maxs":[-1e308,0,0]', t))
    assert_one_line_error(run_cli(["info", str(folder)]), 17, "means.maxs[0]")

    parts = encode_compressed(splats)
    parts.chunks["min_x"][:] = -3.4e38
    parts.chunks["max_x"][:] = 3.4e38
    parts.chunks["max_y"][0] = np.inf
    parts.chunks["min_z"][0] = np.nan
    chunked = write_compressed_parts(tmp_path / "bounds.compressed.ply", parts)
    out = tmp_path / "bounds.ply"
    run = run_cli(["decompress", str(chunked), "-o", str(out)])
    assert run.returncode == 0 and run.stderr == "", run.stderr

    doubles = random_splats(300, seed=11)
    doubles.positions[0, 0] = np.inf  # written as a double the reader must round to float32
    path = write_ply_variant(tmp_path / "d.ply", doubles, types="double")
    path.write_bytes(path.read_bytes().replace(np.float64(np.inf).tobytes(), np.float64(1e300).tobytes()))
    run = run_cli(["info", str(path)])
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert np.isposinf(read_scene(path).splats.positions[0, 0])


def test_12_damaged_bundle_is_not_read_as_its_folder(tmp_path, sog_folder):
    folder = _sog_copy(sog_folder, tmp_path)
    broken = folder / "broken.sog"
    broken.write_bytes((sog_folder / "scene.sog").read_bytes()[:2000])
    out = tmp_path / "out.ply"
    assert_one_line_error(run_cli(["decompress", str(broken), "-o", str(out)]), 17, "broken.sog")
    assert not out.exists()


@pytest.mark.parametrize(
    ("data", "words"),
    [(b"not an image at all", ("RIFF",)), (vp8l_garbage(20, 16), ())],
    ids=["not-riff", "bad-vp8l-data"],
)
def test_13_broken_image_names_the_file(tmp_path, sog_folder, data, words):
    folder = _sog_copy(sog_folder, tmp_path, files={"quats.webp": data})
    run = run_cli(["info", str(folder)])
    assert_one_line_error(run, 17, "quats.webp", "not a decodable WebP image", *words)
    assert "BytesIO" not in run.stderr and "0x" not in run.stderr
