"""Streamed SOG (``--layout lod``): the level pyramid, splat-transform's partition, lod-meta.json written by the CLI
and read back by us and by splat-transform 3.7.0, levels given as inputs (``--lod-input levels``), and hostile
lod-meta.json inputs. The quality check per level is in test_lod_quality.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_conformance import assert_same_splats

from sogs_compressor.cli import main
from sogs_compressor.lod.chunks import ellipsoid_boxes, partition
from sogs_compressor.lod.pyramid import DEFAULT_MAX_LEVELS, DEFAULT_MIN_SPLATS, build_pyramid, level_counts
from sogs_compressor.read import detect_format, read_scene
from sogs_compressor.read.lod import parse_lod_meta
from sogs_compressor.sample import generate_scene
from sogs_compressor.write.ply import write_ply

LEVELS = 3
CHUNK_K = 1
"""1K-splat chunks: the 4K-splat scene's levels need several files, and leaves split."""
STREAMED_FLAGS = ("--lod-levels", LEVELS, "--lod-chunk-count", CHUNK_K, "--preset", "fast", "--device", "cpu",
                  "--quality-check", "off", "--palette-size", 64)
"""A small palette: each chunk clusters its own, and a 1K one costs ~1 s a chunk on CPU."""


def cli(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sogs_compressor", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


# ---- the pyramid ----------------------------------------------------------------------------------------------

def test_level_counts():
    assert level_counts(1_000_000) == [1_000_000, 500_000, 250_000, 125_000, 62_500]  # 5 levels by default
    assert len(level_counts(10**9)) == DEFAULT_MAX_LEVELS
    assert level_counts(40_000) == [40_000, 20_000]  # 10,000 is below the 16,384 floor
    assert level_counts(DEFAULT_MIN_SPLATS) == [DEFAULT_MIN_SPLATS]
    assert level_counts(1001, levels=3) == [1001, 501, 251]  # levels alone: exactly that many
    assert level_counts(1001, min_splats=200) == [1001, 501, 251]  # min alone: halve while >= 200
    assert level_counts(1001, levels=2, min_splats=10) == [1001, 501]
    with pytest.raises(ValueError):
        level_counts(3, levels=4)  # 3, 2, 1 and no further half


def test_pyramid_is_deterministic_and_halves():
    scene = generate_scene(3000, sh_degree=1, seed=5)
    counts = level_counts(scene.count, levels=LEVELS)
    first = build_pyramid(scene, counts, seed=7)
    second = build_pyramid(scene, counts, seed=7)
    assert [lvl.count for lvl in first] == counts == [3000, 1500, 750]
    assert first[0] is scene
    for a, b in zip(first, second, strict=True):
        for name in ("positions", "log_scales", "rotations", "opacity_logits", "f_dc", "f_rest"):
            assert np.array_equal(getattr(a, name), getattr(b, name))


# ---- the partition ----------------------------------------------------------------------------------------------

def leaves(node: dict):
    if "lods" in node:
        yield node
    for child in node.get("children", []):
        yield from leaves(child)


def test_partition_covers_every_splat_once_in_contiguous_ranges():
    scene = generate_scene(6000, sh_degree=0, seed=2)
    levels = [scene, scene.take(np.arange(0, 6000, 2)), scene.take(np.arange(0, 6000, 4))]
    parts = partition(levels, chunk_count=CHUNK_K, chunk_extent=1e9, chunk_min=0)
    assert len(parts.files) > len(levels)  # several files per level
    for level, splats in enumerate(levels):
        rows = np.concatenate([f.rows for f in parts.level_files(level)])
        assert np.array_equal(np.sort(rows), np.arange(splats.count))  # every splat of the level, once
    spans: dict[int, list[tuple[int, int]]] = {}
    boxes = [ellipsoid_boxes(lvl) for lvl in levels]
    for leaf in leaves(parts.tree):
        low, high = np.array(leaf["bound"]["min"]), np.array(leaf["bound"]["max"])
        for key, ref in leaf["lods"].items():
            chunk = parts.files[ref["file"]]
            assert chunk.level == int(key)
            spans.setdefault(ref["file"], []).append((ref["offset"], ref["count"]))
            rows = chunk.rows[ref["offset"]:ref["offset"] + ref["count"]]
            assert (boxes[chunk.level][0][rows] >= low).all() and (boxes[chunk.level][1][rows] <= high).all()
    for file, ranges in spans.items():
        ends = [offset + count for offset, count in sorted(ranges)]
        assert [offset for offset, _ in sorted(ranges)] == [0, *ends[:-1]]
        assert ends[-1] == parts.files[file].rows.size
        if len(ends) > 1:  # a file is closed by the leaf that takes it past the chunk size, not later
            assert ends[-2] <= CHUNK_K * 1024


def test_ellipsoid_boxes_are_the_rotated_scales_box():
    scene = generate_scene(5000, sh_degree=0, seed=4)
    q = scene.rotations.astype(np.float64) / np.linalg.norm(scene.rotations.astype(np.float64), axis=1, keepdims=True)
    rotation = torch.tensor(q)
    from sogs_compressor.splats_torch import rotation_matrices

    half = np.einsum("nij,nj->ni", np.abs(rotation_matrices(rotation).numpy()), np.exp(scene.log_scales.astype(np.float64)))
    low, high = ellipsoid_boxes(scene)
    np.testing.assert_allclose(low, scene.positions - half, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(high, scene.positions + half, rtol=1e-12, atol=1e-12)


def test_partition_splits_for_extent_like_splat_transform():
    scene = generate_scene(20000, sh_degree=0, seed=4)  # spans ~20 units
    one_chunk = partition([scene], chunk_count=512, chunk_extent=1e9, chunk_min=8)
    assert "lods" in one_chunk.tree and len(one_chunk.files) == 1
    by_extent = partition([scene], chunk_count=512, chunk_extent=4.0, chunk_min=8)
    sizes = [ref["count"] for leaf in leaves(by_extent.tree) for ref in leaf["lods"].values()]
    assert len(sizes) > 1 and min(sizes) > 8 * 1024 / 2 - 1  # a node of <= 8K splats is not split for extent


# ---- compress --layout lod, read back ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def streamed(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A 4K-splat SH-1 scene compressed to a Streamed SOG of 3 levels in 1K chunks (no quality check)."""
    root = tmp_path_factory.mktemp("lod")
    ply = root / "scene.ply"
    write_ply(generate_scene(4000, sh_degree=1, seed=11), ply)
    out = root / "out"
    proc = cli("compress", ply, "-o", out, "--layout", "lod", *STREAMED_FLAGS, "--json")
    assert proc.returncode == 0, proc.stderr
    return ply, out, json.loads(proc.stdout)


def test_cli_writes_lod_meta_and_chunk_sogs(streamed):
    ply, out, result = streamed
    meta = json.loads((out / "lod-meta.json").read_text())
    assert meta["version"] == 1 and meta["lodLevels"] == LEVELS
    assert meta["counts"] == [4000, 2000, 1000] and meta["count"] == 7000
    assert meta["asset"]["chunkGaussians"] == CHUNK_K * 1024
    for name in meta["filenames"]:
        level, _ = Path(name).parent.name.split("_")
        assert (out / name).is_file() and detect_format(out / name) == "sog"
    manifest = parse_lod_meta((out / "lod-meta.json").read_bytes())  # our checks pass on our own output
    assert manifest.counts == meta["counts"]
    # the report: levels, chunks, splats and bytes per level; the bytes are the files'
    lod = result["lod"]
    assert [lvl["splats"] for lvl in lod["levels"]] == meta["counts"] and lod["palette"] == "chunk"
    assert sum(lvl["chunks"] for lvl in lod["levels"]) == lod["chunks"] == len(meta["filenames"])
    for lvl in lod["levels"]:
        files = [p for name in meta["filenames"] if name.startswith(f"{lvl['level']}_")
                 for p in (out / name).parent.iterdir()]
        assert lvl["bytes"] == sum(p.stat().st_size for p in files)
    assert result["output_bytes"] == lod["lod_meta_bytes"] + sum(lvl["bytes"] for lvl in lod["levels"])
    assert result["errors"]["position_rel_max"] < 1e-3  # level 0 read back through lod-meta.json
    page = json.loads(_config_script((out / "scene.html").read_text()))
    assert page["src"] == "./lod-meta.json"
    # -o .../lod-meta.json means --layout lod; the same settings give the same bytes; the summary has the levels
    again = out.parent / "again" / "lod-meta.json"
    summary = cli("compress", ply, "-o", again, *STREAMED_FLAGS)
    assert summary.returncode == 0, summary.stderr
    assert _digest(again.parent) == _digest(out)
    assert f"levels: {LEVELS} in {lod['chunks']} chunks" in summary.stdout
    assert "level 2: 1000 splats" in summary.stdout and f"wrote {again}" in summary.stdout
    proc = cli("compress", ply, "-o", again, "--layout", "dir", "--device", "cpu")
    assert proc.returncode == 2 and "names a lod-meta.json, which --layout dir contradicts" in proc.stderr


def _config_script(page: str) -> str:
    start = page.index('<script id="sogs-viewer-config" type="application/json">') + 56
    return page[start:page.index("</script>", start)]


def _digest(folder: Path) -> str:
    """sha256 over the Streamed SOG's files (names and bytes; the page and preview left out)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".json", ".webp"):
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_each_level_decodes_to_what_was_encoded(streamed):
    ply, out, result = streamed
    from sogs_compressor.lod.chunks import partition as plan
    from sogs_compressor.verify.metrics import attribute_errors

    scene = read_scene(ply).splats
    levels = build_pyramid(scene, level_counts(scene.count, levels=LEVELS), seed=0)  # the CLI's seed
    parts = plan(levels, CHUNK_K, 16.0, 8)
    for level, splats in enumerate(levels):
        decoded = read_scene(out / "lod-meta.json", level).splats
        order = np.concatenate([f.rows for f in parts.level_files(level)])
        errors = attribute_errors(splats.take(order), decoded)
        assert errors["position_rel_max"] < 1e-3 and errors["rotation_deg_p99"] < 1.0, (level, errors)
        assert errors["f_dc_rmse"] < 0.02 and errors["log_scale_rmse"] < 0.05, (level, errors)
        if level == 0:  # the verifier decoded the chunks from their textures: the disk reader's numbers
            assert result["errors"] == json.loads(json.dumps(errors))
    everything = read_scene(out).splats  # the folder, all levels in order
    assert everything.count == 7000
    np.testing.assert_array_equal(everything.positions[4000:6000], read_scene(out / "lod-meta.json", 1).splats.positions)


def test_the_verifier_refuses_a_lod_meta_that_does_not_name_the_written_chunks(streamed):
    from sogs_compressor.errors import OutputError
    from sogs_compressor.lod.written import WrittenLevels

    _, out, _ = streamed
    meta = json.loads((out / "lod-meta.json").read_text())
    names = meta["filenames"]
    chunk_metas = [json.loads((out / name).read_text()) for name in names]
    levels = [int(Path(name).parent.name.split("_")[0]) for name in names]

    def written(levels=levels, names=names, metas=chunk_metas) -> WrittenLevels:
        chunks = WrittenLevels()
        for level, name, chunk_meta in zip(levels, names, metas, strict=True):
            chunks.add(level, name, chunk_meta, {})
        return chunks

    written().check_manifest(out / "lod-meta.json")  # what was written passes
    with pytest.raises(OutputError, match="chunk files, not the .* written"):
        written(levels[:-1], names[:-1], chunk_metas[:-1]).check_manifest(out / "lod-meta.json")
    short = [dict(chunk_metas[0], count=chunk_metas[0]["count"] - 1), *chunk_metas[1:]]
    with pytest.raises(OutputError, match=f"gives chunk {names[0]} level 0 and"):
        written(metas=short).check_manifest(out / "lod-meta.json")
    with pytest.raises(OutputError, match="does not read back"):
        written().check_manifest(out / "missing-lod-meta.json")


def test_info_and_decompress_select_a_level(streamed, tmp_path):
    _, out, _ = streamed
    proc = cli("info", out / "lod-meta.json", "--json")
    info = json.loads(proc.stdout)
    assert info["format"] == "lod" and info["count"] == 7000 and info["lod"]["counts"] == [4000, 2000, 1000]
    proc = cli("info", out, "--lod", "-1", "--json")
    assert json.loads(proc.stdout)["count"] == 1000
    proc = cli("decompress", out / "lod-meta.json", "--lod", "1", "-o", tmp_path / "l1.ply")
    assert proc.returncode == 0, proc.stderr
    assert read_scene(tmp_path / "l1.ply").splats.count == 2000
    proc = cli("decompress", out / "lod-meta.json", "--lod", "3", "-o", tmp_path / "x.ply")
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --lod 3: the scene has levels 0..2"
    proc = cli("info", out / "0_0" / "meta.json", "--lod", "0")
    assert proc.returncode == 2 and "not a Streamed SOG" in proc.stderr


def test_compare_takes_level_zero_of_a_streamed_sog(streamed):
    ply, out, _ = streamed
    proc = cli("compare", ply, out / "lod-meta.json", "--views", "1", "--interior", "0", "--size", "64", "--json",
               "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["compressed"]["format"] == "lod" and report["compressed"]["splats"] == 4000



def test_chunk_codebooks_are_shortest_float32_and_decode_the_same(streamed, tmp_path):
    """Each chunk's codebooks are written as the shortest decimals of their float32 values (sog.meta): the chunk
    decodes to exactly what the same meta.json with every value as the float32's exact double gives, and its
    meta.json is smaller."""
    import shutil

    from sogs_compressor.sog.meta import shortest_float32

    _, out, _ = streamed
    chunk = out / "0_0"
    compact = json.loads((chunk / "meta.json").read_text())
    exact = {**compact}
    for key in ("scales", "sh0", "shN"):
        values = compact[key]["codebook"]
        assert all(shortest_float32(v) == v and len(repr(v)) <= 16 for v in values), key
        exact[key] = {**compact[key], "codebook": [float(np.float32(v)) for v in values]}
    assert len(json.dumps(exact, separators=(",", ":"))) > 1.4 * (chunk / "meta.json").stat().st_size
    shutil.copytree(chunk, tmp_path / "exact")
    (tmp_path / "exact" / "meta.json").write_text(json.dumps(exact, separators=(",", ":")))
    assert_same_splats(read_scene(chunk).splats, read_scene(tmp_path / "exact").splats)


def test_shortest_float32_reads_back_through_a_double():
    """The JSON parse a viewer does (decimal -> double -> float32) gives every float32 back, over all magnitudes."""
    from sogs_compressor.sog.meta import shortest_float32

    rng = np.random.default_rng(7)
    bits = rng.integers(0, 0x7F800000, 200_000, dtype=np.uint32)  # every finite positive float32 pattern range
    values = np.concatenate([bits.view(np.float32), -bits[:1000].view(np.float32), [0.0, 1.0, -13.3155584]])
    for v in values.astype(np.float32):
        written = json.dumps(shortest_float32(float(v)))
        assert np.float32(json.loads(written)) == v, (v, written)


def test_codebook_floats_at_the_float32_limits_read_back():
    """The largest float32's shortest decimal (3.4028235e+38) is beyond the float32 range as a double: the exact
    double is written instead, which readers that check the range in double precision accept (found by fuzzing)."""
    from sogs_compressor.sog.meta import codebook, codebook_floats

    top = np.finfo(np.float32)
    values = np.linspace(-1.0, 1.0, 256).astype(np.float32)
    values[[0, 1, 2, 255]] = [-top.max, top.max, top.tiny, np.nextafter(top.max, np.float32(0))]
    written = json.loads(json.dumps({"codebook": codebook_floats(values)}))
    np.testing.assert_array_equal(codebook(written, "scales"), values)

# ---- splat-transform 3.7.0 reads it -------------------------------------------------------------------------------

def assert_peer_reads_our_levels(out: Path, splat_transform, tmp_path: Path) -> None:
    """splat-transform's ``--info`` gives the levels and counts we wrote, and its decode of each level (``-L``)
    equals ours."""
    proc = subprocess.run([*splat_transform, str(out / "lod-meta.json"), "--info", "json", "null"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = json.loads(proc.stdout[proc.stdout.index("{"):proc.stdout.rindex("}") + 1])
    assert info["format"] == "lod" and info["numLods"] == LEVELS and info["lodCounts"] == [4000, 2000, 1000]
    for level in range(LEVELS):
        target = tmp_path / f"level{level}.ply"
        proc = subprocess.run([*splat_transform, "-q", "-w", str(out / "lod-meta.json"), "-L", str(level),
                               str(target)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert_same_splats(read_scene(out / "lod-meta.json", level).splats, read_scene(target).splats)


def test_splat_transform_reads_our_levels(streamed, splat_transform, tmp_path):
    assert_peer_reads_our_levels(streamed[1], splat_transform, tmp_path)



@pytest.fixture(scope="module")
def streamed_level_palette(streamed, tmp_path_factory) -> tuple[Path, dict]:
    """The ``streamed`` scene written with ``--lod-palette level``: one k-means per level."""
    ply, _, _ = streamed
    out = tmp_path_factory.mktemp("lodpal") / "out"
    proc = cli("compress", ply, "-o", out, "--layout", "lod", *STREAMED_FLAGS, "--lod-palette", "level", "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_level_palette_chunks_index_one_palette_per_level(streamed, streamed_level_palette):
    """Each chunk of a level stores the entries its splats use of that level's one k-means palette (64 entries
    here): every splat decodes to its entry of the level palette, up to the chunk's codebook rounding, which the
    per-chunk palettes of the default output do not. The files and ranges are the default output's."""
    from sogs_compressor import presets
    from sogs_compressor.errors import SogsError
    from sogs_compressor.lod.chunks import partition as plan
    from sogs_compressor.lod.streamed import level_palette
    from sogs_compressor.options import CompressOptions

    ply, out_chunk, _ = streamed
    out, result = streamed_level_palette
    assert result["lod"]["palette"] == "level"
    proc = cli("compress", ply, "-o", out.parent / "x", "--layout", "lod", "--lod-palette", "shared")
    assert proc.returncode == 2 and "--lod-palette" in proc.stderr, proc.stderr
    with pytest.raises(SogsError, match="--lod-palette must be one of chunk, level"):
        CompressOptions(lod_palette="shared").validate()
    meta = json.loads((out / "lod-meta.json").read_text())
    assert meta == json.loads((out_chunk / "lod-meta.json").read_text())
    options = presets.resolve(CompressOptions(preset="fast", palette_size=64, device="cpu").validate())
    scene = read_scene(ply).splats
    levels = build_pyramid(scene, level_counts(scene.count, levels=LEVELS), seed=0)
    parts = plan(levels, CHUNK_K, 16.0, 8)
    for level, splats in enumerate(levels):
        centroids, labels = level_palette(splats, options, torch.device("cpu"))
        order = np.concatenate([f.rows for f in parts.level_files(level)])
        expected = centroids[labels[order]]
        ours = np.abs(read_scene(out / "lod-meta.json", level).splats.f_rest - expected)
        theirs = np.abs(read_scene(out_chunk / "lod-meta.json", level).splats.f_rest - expected)
        counts = [json.loads((out / f.name).read_text())["shN"]["count"] for f in parts.level_files(level)]
        assert all(c <= 64 for c in counts) and (level > 0 or len(counts) > 1), (level, counts)
        assert ours.max() < 0.05 and np.sqrt((ours ** 2).mean()) < 0.2 * np.sqrt((theirs ** 2).mean()), level


def test_splat_transform_reads_our_level_palettes(streamed_level_palette, splat_transform, tmp_path):
    assert_peer_reads_our_levels(streamed_level_palette[0], splat_transform, tmp_path)


def test_splat_transform_decimated_levels_read_back(splat_transform, tmp_path):
    """The other direction: splat-transform's own lod-meta.json (two tagged levels) reads with our reader."""
    scene = generate_scene(1500, sh_degree=0, seed=8)
    write_ply(scene, tmp_path / "l0.ply")
    write_ply(scene.take(np.arange(0, 1500, 3)), tmp_path / "l1.ply")
    proc = subprocess.run([*splat_transform, "-q", "-w", str(tmp_path / "l0.ply"), "-l", "0", str(tmp_path / "l1.ply"),
                           "-l", "1", "--lod-chunk-count", "1", str(tmp_path / "st" / "lod-meta.json")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = parse_lod_meta((tmp_path / "st" / "lod-meta.json").read_bytes())
    assert manifest.counts == [1500, 500] and manifest.leaves > 1  # leaves share a chunk file: ranges at offsets
    assert read_scene(tmp_path / "st" / "lod-meta.json", 1).splats.count == 500
    for level in (0, 1):
        proc = subprocess.run([*splat_transform, "-q", "-w", str(tmp_path / "st" / "lod-meta.json"), "-L", str(level),
                               str(tmp_path / f"l{level}.out.ply")], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert_same_splats(read_scene(tmp_path / "st" / "lod-meta.json", level).splats,
                           read_scene(tmp_path / f"l{level}.out.ply").splats)


# ---- --lod-input levels: one input per level ----------------------------------------------------------------------

LEVEL_FLAGS = STREAMED_FLAGS[2:]
"""The same settings without --lod-levels: the inputs are the levels."""
assert LEVEL_FLAGS[0] == "--lod-chunk-count"


@pytest.fixture(scope="module")
def tagged(streamed) -> tuple[list[Path], Path, dict]:
    """The ``streamed`` scene's pyramid (as the CLI builds it: seed 0) written one PLY per level, then given back
    as tagged levels."""
    ply, out, _ = streamed
    scene = read_scene(ply).splats
    levels = build_pyramid(scene, level_counts(scene.count, levels=LEVELS), seed=0)
    paths = [ply]
    for level, splats in enumerate(levels[1:], start=1):
        paths.append(ply.parent / f"L{level}.ply")
        write_ply(splats, paths[-1])
    target = ply.parent / "tagged"
    proc = cli("compress", *paths, "-o", target, "--layout", "lod", "--lod-input", "levels", *LEVEL_FLAGS, "--json")
    assert proc.returncode == 0, proc.stderr
    return paths, target, json.loads(proc.stdout)


def test_given_levels_are_written_as_the_built_pyramid(streamed, tagged):
    """Levels given as files (no decimation) write the same bytes as the same levels built by decimation, and the
    report says where they came from."""
    _, out, _ = streamed
    paths, target, result = tagged
    assert _digest(target) == _digest(out)
    lod = result["lod"]
    assert lod["input"] == "levels" and [lvl["splats"] for lvl in lod["levels"]] == [4000, 2000, 1000]
    assert [entry["path"] for entry in lod["inputs"]] == [str(p) for p in paths]
    assert result["counts"]["input"] == result["counts"]["output"] == 7000
    assert result["input_bytes"] == sum(p.stat().st_size for p in paths)
    assert "decimate" not in result["timings"]
    # -o .../lod-meta.json means --layout lod here too; the summary says the levels were given
    proc = cli("compress", *paths, "-o", target.parent / "again" / "lod-meta.json", "--lod-input", "levels",
               *LEVEL_FLAGS)
    assert proc.returncode == 0, proc.stderr
    assert "levels: 3 in" in proc.stdout and "as given: one input per level" in proc.stdout


def test_given_levels_are_checked_before_anything_is_written(tagged, tmp_path, capsys):
    """Each problem is one line and its exit code: usage (2) for the order, the mix or the flags; the bad file's own
    code, naming it, for a file that cannot be read."""
    (l0, l1, l2), _, _ = tagged
    out = tmp_path / "out"

    def run(*args) -> tuple[int, str]:
        code = main(["compress", *map(str, args), "-o", str(out), "--lod-input", "levels", *map(str, LEVEL_FLAGS)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        return code, lines[0]

    code, line = run(l1, l0, "--layout", "lod")  # 2000 then 4000 splats
    assert code == 2 and f"level 1 ({l0}) has 4000 splats, more than level 0 ({l1}, 2000)" in line
    code, line = run(l0, l1)
    assert code == 2 and "give --layout lod" in line
    code, line = run(l0, l1, "--layout", "lod", "--lod-levels", "2")
    assert code == 2 and "the inputs are the levels" in line
    code, line = run(l0, tmp_path / "missing.ply", "--layout", "lod")
    assert code == 3 and "missing.ply" in line
    truncated = tmp_path / "truncated.ply"
    truncated.write_bytes(l1.read_bytes()[:5000])
    code, line = run(l0, truncated, l2, "--layout", "lod")
    assert code == 14 and str(truncated) in line
    flat = tmp_path / "sh0.ply"
    write_ply(read_scene(l1).splats.with_sh_degree(0), flat)
    code, line = run(l0, flat, "--layout", "lod")
    assert code == 2 and "different SH degrees" in line and "--sh-bands 0" in line
    assert not out.exists()
    assert main(["compress", str(l0), str(flat), "-o", str(out), "--layout", "lod", "--lod-input", "levels",
                 "--sh-bands", "0", "-q", *map(str, LEVEL_FLAGS)]) == 0  # written at the degree they share
    assert read_scene(out / "lod-meta.json", 1).splats.sh_degree == 0


def test_splat_transform_reads_our_given_levels(tagged, splat_transform, tmp_path):
    """splat-transform 3.7.0 reads the tagged levels we wrote with our counts, decodes a level to our values, and
    makes the same levels of the same tagged inputs (``-l N`` per input)."""
    paths, target, _ = tagged
    proc = subprocess.run([*splat_transform, str(target / "lod-meta.json"), "--info", "json", "null"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = json.loads(proc.stdout[proc.stdout.index("{"):proc.stdout.rindex("}") + 1])
    assert info["numLods"] == LEVELS and info["lodCounts"] == [4000, 2000, 1000]
    level = tmp_path / "level2.ply"
    proc = subprocess.run([*splat_transform, "-q", "-w", str(target / "lod-meta.json"), "-L", "2", str(level)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_same_splats(read_scene(target / "lod-meta.json", 2).splats, read_scene(level).splats)
    # -H 0: its SH palette needs a WebGPU device, and the levels' counts and tree do not depend on SH
    tags = [arg for index, path in enumerate(paths) for arg in (str(path), "-H", "0", "-l", str(index))]
    theirs = tmp_path / "st" / "lod-meta.json"
    proc = subprocess.run([*splat_transform, "-q", "-w", *tags, "--lod-chunk-count", str(CHUNK_K), str(theirs)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ours = json.loads((target / "lod-meta.json").read_text())
    st = json.loads(theirs.read_text())
    assert st["counts"] == ours["counts"] and st["lodLevels"] == ours["lodLevels"]

    def ranges(meta: dict) -> list[dict]:  # per leaf, each level's (offset, count): file ids are numbered apart
        return [{key: (ref["offset"], ref["count"]) for key, ref in leaf["lods"].items()} for leaf in leaves(meta["tree"])]

    assert ranges(st) == ranges(ours)


# ---- hostile lod-meta.json --------------------------------------------------------------------------------------------

def _first_leaf(meta: dict) -> dict:
    return next(leaves(meta["tree"]))


def _set(path: list, value):
    def change(meta: dict) -> None:
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _leaf(change):
    return lambda meta: change(_first_leaf(meta))


def _deep(meta: dict) -> None:
    node = {"bound": meta["tree"]["bound"], "lods": {}}
    for _ in range(70):
        node = {"bound": meta["tree"]["bound"], "children": [node]}
    meta["tree"]["children"] = [*meta["tree"]["children"], node]


HOSTILE = {
    "version 2": (_set(["version"], 2), "version"),
    "lodLevels 0": (_set(["lodLevels"], 0), "lodLevels"),
    "lodLevels text": (_set(["lodLevels"], "3"), "lodLevels"),
    "filenames not a list": (_set(["filenames"], "0_0/meta.json"), "filenames"),
    "parent folder": (lambda m: m["filenames"].__setitem__(0, "../out/0_0/meta.json"), "plain relative path"),
    "absolute path": (lambda m: m["filenames"].__setitem__(0, "/etc/passwd"), "plain relative path"),
    "url": (lambda m: m["filenames"].__setitem__(0, "https://example.com/meta.json"), "plain relative path"),
    "missing chunk": (lambda m: m["filenames"].__setitem__(0, "9_9/meta.json"), "missing"),
    "tree not an object": (_set(["tree"], []), "tree"),
    "bound infinite": (lambda m: m["tree"]["bound"].__setitem__("min", [0, 0, 1e39]), "bound.min"),
    "bound inverted": (lambda m: m["tree"]["bound"].__setitem__("min", [1e30, 0, 0]), "min above max"),
    "both children and lods": (lambda m: m["tree"].__setitem__("lods", {}), "either children or lods"),
    "lod key not a level": (_leaf(lambda leaf: leaf["lods"].__setitem__("7", leaf["lods"]["0"])), "not a level"),
    "lod key with a leading zero": (_leaf(lambda leaf: leaf["lods"].__setitem__("01", leaf["lods"].pop("1"))),
                                    "not a level"),
    # found by the Streamed SOG fuzz kind: int() of a 5,000-digit key raised ValueError (an internal error)
    "lod key of 5000 digits": (_leaf(lambda leaf: leaf["lods"].__setitem__("1" * 5000, leaf["lods"]["0"])),
                               "not a level"),
    "file index out of range": (_leaf(lambda leaf: leaf["lods"]["0"].__setitem__("file", 999)), "file"),
    "negative offset": (_leaf(lambda leaf: leaf["lods"]["0"].__setitem__("offset", -1)), "offset"),
    "count float": (_leaf(lambda leaf: leaf["lods"]["0"].__setitem__("count", 1.5)), "count"),
    "gap between ranges": (_leaf(lambda leaf: leaf["lods"]["0"].__setitem__("offset", 1)), "unused"),
    "overlapping ranges": (lambda m: _overlap(m), "overlaps"),
    "counts disagree": (lambda m: m["counts"].__setitem__(0, m["counts"][0] - 1), "counts[0]"),
    "file of two levels": (_leaf(lambda leaf: leaf["lods"]["1"].__setitem__("file", leaf["lods"]["0"]["file"])),
                           "a chunk serves one level"),
    "too deep": (_deep, "deeper than"),
}


def _beside_copies_of_the_chunks(out: Path, folder: Path, meta: dict) -> Path:
    """``folder/lod-meta.json`` holding ``meta``, beside copies of ``out``'s chunk folders."""
    import shutil

    for entry in out.iterdir():
        if entry.is_dir():
            shutil.copytree(entry, folder / entry.name)
    (folder / "lod-meta.json").write_text(json.dumps(meta))
    return folder / "lod-meta.json"


def _overlap(meta: dict) -> None:
    """A level-0 range that is not a file's first moved back one row, onto the range before it."""
    leaf = next(leaf for leaf in leaves(meta["tree"]) if leaf["lods"].get("0", {}).get("offset", 0) > 0)
    leaf["lods"]["0"]["offset"] -= 1


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_lod_meta_is_one_line_and_exit_17(streamed, tmp_path, case, capsys):
    _, out, _ = streamed
    change, words = HOSTILE[case]
    meta = json.loads((out / "lod-meta.json").read_text())
    change(meta)
    hostile = _beside_copies_of_the_chunks(out, tmp_path, meta)
    assert main(["info", str(hostile)]) == 17, case  # the CLI's own handling, in this process (fast)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (case, lines)


def test_chunk_count_disagreeing_with_its_ranges(streamed, tmp_path, capsys):
    """A leaf range shortened (and counts to match): the chunk file then holds rows no range names."""
    _, out, _ = streamed
    meta = json.loads((out / "lod-meta.json").read_text())
    last = max((leaf for leaf in leaves(meta["tree"]) if "2" in leaf["lods"]),
               key=lambda leaf: leaf["lods"]["2"]["offset"])  # the last range of a level-2 file
    last["lods"]["2"]["count"] -= 1
    meta["counts"][2] -= 1
    meta["count"] -= 1
    assert main(["info", str(_beside_copies_of_the_chunks(out, tmp_path, meta))]) == 17
    assert "gives its ranges" in capsys.readouterr().err


def test_symlinked_chunk_outside_the_folder_is_refused(streamed, tmp_path, capsys):
    _, out, _ = streamed
    meta = json.loads((out / "lod-meta.json").read_text())
    for entry in out.iterdir():
        if entry.is_dir():
            (tmp_path / entry.name).symlink_to(entry, target_is_directory=True)  # links out of tmp_path
    (tmp_path / "lod-meta.json").write_text(json.dumps(meta))
    assert main(["info", str(tmp_path / "lod-meta.json")]) == 17
    assert "leads outside" in capsys.readouterr().err


def test_a_chunk_naming_a_texture_outside_its_folder_is_refused(streamed, tmp_path, capsys):
    """A chunk meta.json that names a texture in another folder (``../0_1/sh0.webp``: the layout a palette file
    shared between chunks would need) is refused, exit 17: a chunk reads only the files beside it, so a hostile
    scene cannot make the reader open files elsewhere."""
    _, out, _ = streamed
    meta = json.loads((out / "lod-meta.json").read_text())
    copy = _beside_copies_of_the_chunks(out, tmp_path, meta)
    chunk_meta = tmp_path / "0_0" / "meta.json"
    chunk = json.loads(chunk_meta.read_text())
    chunk["sh0"]["files"] = ["../0_1/sh0.webp"]
    chunk_meta.write_text(json.dumps(chunk))
    assert main(["info", str(copy)]) == 17
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "outside its folder" in lines[0], lines


def test_oversized_lod_meta_is_refused_unread(tmp_path, capsys):
    from sogs_compressor.read.lod import MAX_LOD_META_BYTES

    path = tmp_path / "lod-meta.json"
    with open(path, "wb") as f:
        f.write(b"{" + b" " * MAX_LOD_META_BYTES + b"}")
    assert main(["info", str(path)]) == 17
    assert "over the" in capsys.readouterr().err


def test_a_streamed_sog_as_input_is_its_level_zero(streamed, tmp_path):
    """compress / decimate take one set of splats: level 0 (the coarser levels only repeat it); --lod-levels past
    what the scene can halve to is a usage error."""
    _, out, _ = streamed
    proc = cli("decimate", out / "lod-meta.json", "-o", tmp_path / "half.ply", "--to", "50%", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "4000 -> 2000 splats" in proc.stdout
    proc = cli("compress", tmp_path / "half.ply", "-o", tmp_path / "x", "--layout", "lod", "--lod-levels", "16",
               "--device", "cpu")
    assert proc.returncode == 2 and "--lod-levels 16" in proc.stderr, proc.stderr


def test_a_rerun_with_fewer_chunks_leaves_no_stale_chunk_folders(streamed, tmp_path):
    """The same scene written again into the same folder with 4x larger chunks: the chunk folders the new
    lod-meta.json does not name are gone, a chunk-named folder holding anything but a SOG's files is kept, and the
    folder reads back as the new output."""
    ply, first, _ = streamed
    out = tmp_path / "out"
    proc = cli("compress", ply, "-o", out, "--layout", "lod", *STREAMED_FLAGS, "--viewer", "off")
    assert proc.returncode == 0, proc.stderr
    before = {p.name for p in out.iterdir() if p.is_dir()}
    (out / "9_9").mkdir()
    (out / "9_9" / "notes.txt").write_text("not a chunk")
    flags = [str(f) for f in STREAMED_FLAGS]
    flags[flags.index("--lod-chunk-count") + 1] = str(4 * CHUNK_K)
    proc = cli("compress", ply, "-o", out, "--layout", "lod", *flags, "--viewer", "off")
    assert proc.returncode == 0, proc.stderr
    named = {Path(name).parent.name for name in json.loads((out / "lod-meta.json").read_text())["filenames"]}
    after = {p.name for p in out.iterdir() if p.is_dir()}
    assert len(named) < len(before) and after == named | {"9_9"}, (before, named, after)
    assert read_scene(out / "lod-meta.json").splats.count == read_scene(first / "lod-meta.json").splats.count
