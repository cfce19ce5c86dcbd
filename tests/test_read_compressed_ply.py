"""Compressed PLY reader: exact decode formulas, encoder round trip, validation, and splat-transform cross-checks."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from plyfiles import (
    CHUNK_BOUNDS,
    CHUNK_COLORS,
    CompressedParts,
    encode_compressed,
    random_splats,
    write_compressed_parts,
    write_ply_variant,
)

from sogs_compressor.errors import (
    EmptySceneError,
    MissingPropertiesError,
    ShCountError,
    SizeMismatchError,
    UnsupportedFormatError,
)
from sogs_compressor.read import detect_format, read_scene
from sogs_compressor.splats import SH_C0

REPO = Path(__file__).resolve().parents[1]
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
PEER = REPO / ".peer" / "node_modules" / ".bin" / "splat-transform"


def random_parts(n: int, *, colors: bool, rest: int, seed: int) -> CompressedParts:
    """Arbitrary packed words, chunk bounds and SH bytes (0 and 255 included)."""
    rng = np.random.default_rng(seed)
    n_chunks = math.ceil(n / 256)
    names = CHUNK_BOUNDS + (CHUNK_COLORS if colors else ())
    chunks = {}
    for name in names:
        chunks[name] = rng.uniform(-3, 3, n_chunks).astype(np.float32)
        if name.startswith("max"):
            chunks[name] = chunks[name.replace("max", "min")] + rng.uniform(0, 2, n_chunks).astype(np.float32)
    words = {name: rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
             for name in ("packed_position", "packed_rotation", "packed_scale", "packed_color")}
    words["packed_color"][:3] = [0x00000000, 0xFFFFFFFF, 0x80808080]  # alpha 0 and 255 -> -inf / +inf logits
    sh = rng.integers(0, 256, (n, rest), dtype=np.uint8) if rest else None
    if sh is not None:
        sh[0, :2] = [0, 255]
    return CompressedParts(chunks, words, sh)


def reference_decode(parts: CompressedParts, i: int) -> dict[str, list[float]]:
    """Splat i decoded one scalar at a time, straight from the formats.md 1.3 table (splat-transform's arithmetic)."""
    c = i // 256

    def chunk(name: str) -> float:
        return float(parts.chunks[name][c])

    def unorm(word: int, shift: int, bits: int) -> float:
        top = (1 << bits) - 1
        return ((word >> shift) & top) / top

    def lerp(a: float, b: float, t: float) -> float:
        return a * (1 - t) + b * t

    pos, scl, rot, col = (int(parts.words[k][i]) for k in
                          ("packed_position", "packed_scale", "packed_rotation", "packed_color"))
    fields = ((21, 11), (11, 10), (0, 11))
    out = {
        "positions": [lerp(chunk(f"min_{a}"), chunk(f"max_{a}"), unorm(pos, s, b)) for a, (s, b) in zip("xyz", fields, strict=True)],
        "log_scales": [lerp(chunk(f"min_scale_{a}"), chunk(f"max_scale_{a}"), unorm(scl, s, b))
                       for a, (s, b) in zip("xyz", fields, strict=True)],
    }
    abc = [(unorm(rot, s, 10) - 0.5) * math.sqrt(2) for s in (20, 10, 0)]
    largest = math.sqrt(max(0.0, 1 - sum(v * v for v in abc)))
    quat = list(abc)
    quat.insert(rot >> 30, largest)
    out["rotations"] = quat
    rgb = []
    for ch, shift in zip("rgb", (24, 16, 8), strict=True):
        v = unorm(col, shift, 8)
        if "min_r" in parts.chunks:
            v = lerp(chunk(f"min_{ch}"), chunk(f"max_{ch}"), v)
        rgb.append((v - 0.5) / SH_C0)
    out["f_dc"] = rgb
    alpha = (col & 0xFF) / 255
    out["opacity_logits"] = [-math.inf if alpha == 0 else math.inf if alpha == 1 else -math.log(1 / alpha - 1)]
    if parts.sh is not None:
        out["f_rest"] = [((0 if b == 0 else 1 if b == 255 else (b + 0.5) / 256) - 0.5) * 8 for b in parts.sh[i].tolist()]
    return out


@pytest.mark.parametrize(("colors", "rest"), [(True, 0), (False, 9), (True, 24), (True, 45)])
def test_decode_matches_scalar_reference(tmp_path, colors, rest):
    n = 600  # three chunks, the last one partial
    parts = random_parts(n, colors=colors, rest=rest, seed=rest)
    path = write_compressed_parts(tmp_path / "c.ply", parts)
    assert detect_format(path) == "compressed_ply"
    scene = read_scene(path)
    assert scene.format == "compressed_ply" and scene.splats.count == n
    assert scene.splats.sh_degree == {0: 0, 9: 1, 24: 2, 45: 3}[rest]
    assert scene.header["chunk_properties"] == (18 if colors else 12)
    rows = list(range(0, n, 7)) + [0, 1, 2, n - 1]
    for name in ("positions", "log_scales", "rotations", "f_dc", "opacity_logits", "f_rest"):
        got = getattr(scene.splats, name).reshape(n, -1)[rows]
        if name == "f_rest" and rest == 0:
            assert got.shape[1] == 0
            continue
        want = np.array([reference_decode(parts, i)[name] for i in rows], np.float32)
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_encoder_round_trip_within_quantization(tmp_path):
    splats = random_splats(1000, sh_degree=2, seed=11, model="antialiased")
    path = write_compressed_parts(tmp_path / "r.compressed.ply", encode_compressed(splats),
                                  comments=("SplatRenderMode: mip",))
    got = read_scene(path).splats
    assert got.model == "antialiased"
    for name, bits in (("positions", 10), ("log_scales", 10)):
        span = np.ptp(getattr(splats, name), axis=0)
        err = np.abs(getattr(got, name) - getattr(splats, name)).max(axis=0)
        assert np.all(err <= span / (2**bits - 1)), name
    q = splats.rotations / np.linalg.norm(splats.rotations, axis=1, keepdims=True)
    assert np.abs((q * got.rotations).sum(axis=1)).min() > 0.999
    assert np.abs(got.f_dc - splats.f_dc).max() < np.ptp(splats.f_dc) / 255
    assert np.abs(got.f_rest - splats.f_rest).max() <= 8 / 256 + 1e-6
    alpha = 1 / (1 + np.exp(-splats.opacity_logits))
    got_alpha = 1 / (1 + np.exp(-got.opacity_logits))
    assert np.abs(alpha - got_alpha).max() <= 0.5 / 255 + 1e-6


def _parts_with(tmp_path: Path, **edits) -> Path:
    parts = encode_compressed(random_splats(300, sh_degree=1, seed=4))
    for key, value in edits.items():
        if key == "drop_chunk":
            parts.chunks.pop(value)
        elif key == "chunks":
            parts.chunks = {k: v[:value] for k, v in parts.chunks.items()}
        elif key == "sh":
            parts.sh = value(parts.sh)
    return write_compressed_parts(tmp_path / "bad.compressed.ply", parts)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda t: _parts_with(t, drop_chunk="max_scale_y"), MissingPropertiesError, "max_scale_y"),
        (lambda t: _parts_with(t, drop_chunk="max_b"), UnsupportedFormatError, "17 properties"),
        (lambda t: _parts_with(t, chunks=1), SizeMismatchError, "1 chunks.*need 2"),
        (lambda t: _parts_with(t, sh=lambda sh: sh[:, :8]), ShCountError, "8 properties"),
        (lambda t: write_compressed_parts(t / "x.ply", encode_compressed(random_splats(300, 1, seed=1)),
                                          truncate=3), SizeMismatchError, "truncated"),
        (lambda t: write_compressed_parts(t / "x.ply", encode_compressed(random_splats(300, 0, seed=1)),
                                          trailing=b"\0"), SizeMismatchError, "trailing"),
    ],
    ids=["missing-bound", "17-props", "too-few-chunks", "sh-count", "truncated", "trailing"],
)
def test_validation_errors(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        read_scene(make(tmp_path))


def test_zero_splats(tmp_path):
    empty = CompressedParts({n: np.zeros(0, np.float32) for n in CHUNK_BOUNDS},
                            {n: np.zeros(0, np.uint32) for n in
                             ("packed_position", "packed_rotation", "packed_scale", "packed_color")})
    with pytest.raises(EmptySceneError):
        read_scene(write_compressed_parts(tmp_path / "e.ply", empty))


def test_sh_rows_must_match_vertices(tmp_path):
    path = _parts_with(tmp_path)
    text = path.read_bytes().replace(b"element sh 300", b"element sh 299")
    path.write_bytes(text)
    with pytest.raises(SizeMismatchError, match="299 'sh' rows"):
        read_scene(path)


# --- cross-checks against splat-transform's own decoder ------------------------------------------------------------

needs_peer = pytest.mark.skipif(not PEER.exists() or shutil.which("node") is None,
                                reason="splat-transform peer (.peer/node_modules) or node not installed")


def _peer(*args: str) -> None:
    subprocess.run([str(PEER), "-w", *args], check=True, capture_output=True, timeout=120)


def _assert_same_decode(ours: Path, peer_ply: Path) -> None:
    a, b = read_scene(ours).splats, read_scene(peer_ply).splats
    for name in ("positions", "log_scales", "rotations", "opacity_logits", "f_dc", "f_rest"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.peer
@pytest.mark.real
@needs_peer
def test_guitar_matches_splat_transform(tmp_path):
    source = REAL / "guitar.compressed.ply"
    if not source.exists():
        pytest.skip(f"shared real data not found at {REAL}")
    scene = read_scene(source)
    assert scene.splats.count == 90_854 and scene.splats.sh_degree == 0
    np.testing.assert_allclose(scene.splats.positions.min(axis=0), [-0.655, -4.292, -0.528], atol=6e-4)
    np.testing.assert_allclose(scene.splats.positions.max(axis=0), [0.822, 0.086, 0.925], atol=6e-4)
    _peer(str(source), str(tmp_path / "guitar.ply"))
    _assert_same_decode(source, tmp_path / "guitar.ply")


@pytest.mark.peer
@needs_peer
def test_sh3_file_written_by_splat_transform(tmp_path):
    """splat-transform compresses our float PLY (its Morton order, its SH bytes); both decoders must agree."""
    source = write_ply_variant(tmp_path / "s.ply", random_splats(700, sh_degree=3, seed=9))
    _peer(str(source), str(tmp_path / "s.compressed.ply"))
    _peer(str(tmp_path / "s.compressed.ply"), str(tmp_path / "back.ply"))
    assert read_scene(tmp_path / "s.compressed.ply").splats.sh_degree == 3
    _assert_same_decode(tmp_path / "s.compressed.ply", tmp_path / "back.ply")
