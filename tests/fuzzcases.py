"""Structure-aware, seeded mutations of valid scenes, for the fuzz test (tests/fuzzrun.py).

Six kinds: binary PLY, ascii PLY, compressed PLY, SOG bundle (ZIP), SOG folder (meta.json + WebP) and Streamed
SOG (lod-meta.json + chunk SOG folders, written by our own ``compress --layout lod``). Each case starts from one of
a few valid seed scenes and applies one to three mutations that know the format's structure (header lines,
element records, ascii tokens, JSON values, WebP headers, ZIP header fields, chunk names that leave the folder),
so most cases get past the first check and reach the code behind it. A case is fully determined by
``(kind, seed)``.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from forged import png_claiming
from PIL import Image
from plyfiles import (
    NUMPY_CODE,
    Element,
    encode_compressed,
    random_splats,
    write_compressed_parts,
    write_ply_variant,
)
from sogfiles import write_v1, write_v2
from ziplayout import CENTRAL_FIELDS, END_FIELDS, LOCAL_FIELDS, layout, set_field

KINDS = ("ply_binary", "ply_ascii", "compressed_ply", "sog_bundle", "sog_folder", "sog_lod")
COMMANDS = ("info", "decompress", "compress")
DECOY_COUNT = 77
"""Splat count of the valid SOG placed beside every fuzzed bundle: reading it instead would be a wrong accept."""

SEEDS = {
    "ply_binary": ("le_sh1.ply", "be_sh0_double.ply", "le_2dgs_sh2.ply"),
    "ply_ascii": ("ascii_sh1.ply", "ascii_sh0_crlf.ply"),
    "compressed_ply": ("compressed_sh1.ply", "compressed_plain.ply"),
    "sog_bundle": ("sog_v2_sh1", "sog_v2_sh0"),
    "sog_folder": ("sog_v2_sh1", "sog_v2_sh0", "sog_v1"),
    "sog_lod": ("lod_sh1",),
}


def write_seeds(folder: Path) -> Path:
    """The valid scenes every case starts from (deterministic); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_ply_variant(folder / "le_sh1.ply", random_splats(257, sh_degree=1, seed=1))
    write_ply_variant(folder / "be_sh0_double.ply", random_splats(100, seed=2), encoding="binary_big_endian",
                      types="double", after=(Element("camera", 2, [("float", "fx"), ("int", "id")]),))
    write_ply_variant(folder / "le_2dgs_sh2.ply", random_splats(64, sh_degree=2, seed=3), drop=("scale_2",),
                      types={"opacity": "uchar", "f_dc_0": "short"}, comments=("SplatRenderMode: mip",))
    write_ply_variant(folder / "ascii_sh1.ply", random_splats(60, sh_degree=1, seed=4), encoding="ascii")
    write_ply_variant(folder / "ascii_sh0_crlf.ply", random_splats(40, seed=5), encoding="ascii", newline="\r\n",
                      after=(Element("face", 2, lists=[("uchar", "int", "vertex_indices")]),))
    write_compressed_parts(folder / "compressed_sh1.ply", encode_compressed(random_splats(300, sh_degree=1, seed=6)))
    write_compressed_parts(folder / "compressed_plain.ply",
                           encode_compressed(random_splats(100, seed=7), colors=False))
    write_v2(random_splats(300, sh_degree=1, seed=8), folder / "sog_v2_sh1", palette=32)
    write_v2(random_splats(70, seed=9), folder / "sog_v2_sh0")
    write_v1(random_splats(256, sh_degree=1, seed=10), folder / "sog_v1")
    write_v2(random_splats(DECOY_COUNT, seed=11), folder / "decoy")
    (folder / "decoy" / "scene.sog").unlink()
    write_streamed_seed(folder / "lod_sh1")
    return folder


def write_streamed_seed(out: Path) -> None:
    """A Streamed SOG of 3 levels (600 / 300 / 150 splats, SH 1), 3 chunk folders, by our own writer."""
    from sogs_compressor.cli import main
    from sogs_compressor.sample import generate_scene
    from sogs_compressor.write.ply import write_ply

    ply = out.parent / "lod_source.ply"
    write_ply(generate_scene(600, sh_degree=1, seed=12), ply)
    code = main(["compress", "-q", str(ply), "-o", str(out), "--layout", "lod", "--lod-levels", "3",
                 "--lod-chunk-count", "1", "--quality-check", "off", "--device", "cpu", "--preset", "fast",
                 "--palette-size", "32"])
    assert code == 0, f"the Streamed SOG seed was not written (exit {code})"
    ply.unlink()


@dataclass
class Case:
    """One fuzz input: where it is, the command line to run on it, and what was done to it."""

    kind: str
    seed: int
    command: str
    input: Path
    output: Path
    mutations: list[str] = field(default_factory=list)
    lod: int | None = None
    """``--lod N`` for info and decompress of a Streamed SOG (None: all levels)."""

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.seed}"

    def argv(self) -> list[str]:
        level = [] if self.lod is None else ["--lod", str(self.lod)]
        if self.command == "info":
            return ["info", "--json", str(self.input), *level]
        if self.command == "decompress":
            return ["decompress", "-q", str(self.input), "-o", str(self.output / "out.ply"), *level]
        extra = ["--invalid", "error"] if self.seed % 7 == 0 else []
        return ["compress", "-q", str(self.input), "-o", str(self.output / "sog"), "--device", "cpu",
                "--preset", "fast", "--no-verify", *extra]


# --- value pools ------------------------------------------------------------------------------------------------

PLY_TYPES = ("char", "uchar", "short", "ushort", "int", "uint", "float", "double", "int8", "uint8", "int16",
             "uint16", "int32", "uint32", "float32", "float64")
BAD_TYPES = ("float128", "int64", "list uchar float", "list uint int", "", "float float", "FLOAT", "list")
NAMES = ("f_rest_08", "f_rest_45", "f_rest_9", "f_rest_-1", "f_rest_", "f_rest_0000000000000000000001", "x", "rot_0",
         "scale_2", "opacity", "packed_position", "min_x", "max_scale_z", "nx", "f_dc_3", "é", "a b", "vertex")
FORMATS = ("ascii 1.0", "binary_little_endian 1.0", "binary_big_endian 1.0", "binary_little_endian 2.0",
           "binary_middle_endian 1.0", "ascii", "ascii 1.0 extra", "binary_little_endian 1")
SPECIAL_FLOATS = (float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 3.4028235e38, -3.4e38, 1e38, 1e-45,
                  1e300, -1e308, 65504.0, 1.0, -1.0, 5e-324)
ASCII_TOKENS = ("nan", "inf", "-inf", "1e999", "1e-999", "0x1p3", "1_0", "-", ".", "1e", "++1", "1,5", "NaN",
                "infinity", "\xff", "1" * 400, "0." + "3" * 5000, "9" * 100_000, "x" * 5000, "-0", "1e308", "3e38")
JSON_VALUES = (None, True, False, 0, -1, 1, 2, 3, 4, 255, 256, 65535, 65536, 65537, 2**31, 2**53 + 1, 10**19, 10**22,
               1.5, -0.0, 1e38, 3.5e38, 1e308, -1e308, "", "x", "2", "means_l.webp", "../meta.json", "/etc/passwd",
               "a" * 300, [], [0], [0, 0, 0], [None] * 256, [1e39] * 256, {}, {"a": 1}, [[[[0]]]])
ZIP_VALUES = (0, 1, 2, 8, 9, 12, 14, 99, 0x7FFF, 0xFFFF, 0xFFFFFFFF, 1 << 30)


def _count_value(rng: random.Random, n: int) -> str:
    return str(rng.choice((0, 1, n - 1, n + 1, 2 * n, n * 1000, 2**31, 2**32 + n, 2**63, "9" * 5000,
                           "0" * 30 + str(n), "-1", "1e3", "0x10", "", "\u0663", "1.0", 10**19)))


# --- PLY header and body ----------------------------------------------------------------------------------------

@dataclass
class PlyParts:
    """A PLY split into header lines (without ``ply`` / ``end_header``) and body bytes, plus its element layout."""

    lines: list[str]
    body: bytes
    elements: list[tuple[str, int, list[tuple[str, str]]]]
    newline: str = "\n"
    magic: str = "ply"
    end: str = "end_header"
    prefix: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> PlyParts:
        end = data.index(b"end_header") + len(b"end_header")
        end += 2 if data[end:end + 2] == b"\r\n" else 1
        text = data[:end].decode()
        newline = "\r\n" if "\r\n" in text else "\n"
        lines = text.split(newline)[1:-2]
        elements: list[tuple[str, int, list[tuple[str, str]]]] = []
        for line in lines:
            words = line.split()
            if words[0] == "element":
                elements.append((words[1], int(words[2]), []))
            elif words[0] == "property":
                elements[-1][2].append((" ".join(words[1:-1]), words[-1]))
        return cls(lines, data[end:], elements, newline)

    def to_bytes(self) -> bytes:
        header = self.newline.join([self.magic, *self.lines, self.end]) + self.newline
        return header.encode("utf-8", errors="surrogateescape") + self.prefix + self.body


def _mutate_header(rng: random.Random, ply: PlyParts) -> str:
    op = rng.choice(("count", "count", "type", "name", "name", "drop", "duplicate", "swap", "insert", "format",
                     "newline", "end", "magic", "junk"))
    lines = ply.lines
    at = rng.randrange(len(lines))
    if op == "count":
        indices = [i for i, line in enumerate(lines) if line.startswith("element")] or [at]
        at = rng.choice(indices)
        words = lines[at].split()
        n = int(words[2]) if len(words) > 2 and words[2].isdigit() and len(words[2]) < 19 else 1
        lines[at] = f"element {words[1] if len(words) > 1 else 'vertex'} {_count_value(rng, n)}"
    elif op in ("type", "name"):
        indices = [i for i, line in enumerate(lines) if line.startswith("property")] or [at]
        at = rng.choice(indices)
        words = lines[at].split()
        if op == "type":
            lines[at] = f"property {rng.choice(PLY_TYPES + BAD_TYPES)} {words[-1]}"
        else:
            others = [line.split()[-1] for line in lines if line.startswith("property")]
            lines[at] = " ".join([*words[:-1], rng.choice(NAMES + tuple(others))])
    elif op == "drop":
        del lines[at]
    elif op == "duplicate":
        lines.insert(at, lines[at])
    elif op == "swap":
        other = rng.randrange(len(lines))
        lines[at], lines[other] = lines[other], lines[at]
    elif op == "insert":
        lines.insert(at, rng.choice(("element vertex 1", "element chunk 0", "property float x", "comment é",
                                     "obj_info x", "bogus 1", "", "   ", "element", "property", "format ascii 1.0",
                                     "element sh 300", "property list uchar int vertex_indices",
                                     "comment SplatRenderMode: 2dgs", "comment antialiased 1")))
    elif op == "format":
        indices = [i for i, line in enumerate(lines) if line.startswith("format")] or [at]
        lines[rng.choice(indices)] = "format " + rng.choice(FORMATS)
    elif op == "newline":
        ply.newline = rng.choice(("\r\n", "\r", "\n\n", " \n"))
    elif op == "end":
        ply.end = rng.choice(("end_header ", "end_headers", "", "END_HEADER", "end_header\n\n"))
    elif op == "magic":
        ply.magic = rng.choice(("PLY", "ply ", "ply\r", "plyx", ""))
    else:
        lines[at] = lines[at] + rng.choice(("\udcff", "\udc80\udc81", "\x00", "\t", " extra"))
    return f"header:{op}@{at}"


def _mutate_binary_body(rng: random.Random, ply: PlyParts, order: str) -> str:
    body = bytearray(ply.body)
    op = rng.choice(("value", "value", "value", "flip", "truncate", "append", "insert", "delete"))
    if op == "value" and body:
        codes = NUMPY_CODE
        offset = 0
        choices = []
        for _name, count, props in ply.elements:
            stride = sum(np.dtype(codes.get(t, "f4")).itemsize for t, _ in props)
            if count:
                row = rng.randrange(count)
                column = 0
                for t, prop in props:
                    choices.append((offset + row * stride + column, codes.get(t, "f4"), prop))
                    column += np.dtype(codes.get(t, "f4")).itemsize
            offset += count * stride
        at, code, prop = rng.choice(choices)
        if code.startswith("f"):
            with np.errstate(over="ignore"):  # 1e300 as a float is inf: also a value worth writing
                value = np.array(rng.choice(SPECIAL_FLOATS), order + code)
        else:
            info = np.iinfo(code)
            value = np.array(rng.choice((info.min, info.max, 0, rng.randrange(info.min, info.max))), order + code)
        raw = value.tobytes()
        body[at:at + len(raw)] = raw
        ply.body = bytes(body[:len(ply.body)])  # an earlier truncation may have cut the record short
        return f"body:value {prop}@{at}"
    return _mutate_bytes(rng, ply, op)


def _mutate_bytes(rng: random.Random, ply: PlyParts, op: str) -> str:
    body = bytearray(ply.body)
    at = rng.randrange(len(body) + 1)
    if op == "flip" and body:
        at = min(at, len(body) - 1)
        body[at] ^= 1 << rng.randrange(8)
    elif op == "truncate":
        del body[at:]
    elif op == "append":
        body += rng.randbytes(rng.choice((1, 4, 13, 64)))
    elif op == "insert":
        body[at:at] = rng.randbytes(rng.choice((1, 3, 4)))
    else:
        del body[at:at + rng.choice((1, 4, 100))]
    ply.body = bytes(body)
    return f"body:{op}@{at}"


def _mutate_ascii_body(rng: random.Random, ply: PlyParts) -> str:
    lines = ply.body.split(b"\n")
    at = rng.randrange(len(lines))
    tokens = lines[at].split()
    op = rng.choice(("token", "token", "token", "drop_token", "add_token", "drop_line", "blank", "dup_line",
                     "join", "bytes"))
    if op == "token" and tokens:
        tokens[rng.randrange(len(tokens))] = rng.choice(ASCII_TOKENS).encode("latin-1")
        lines[at] = b" ".join(tokens)
    elif op == "drop_token" and tokens:
        del tokens[rng.randrange(len(tokens))]
        lines[at] = b" ".join(tokens)
    elif op == "add_token":
        lines[at] = lines[at] + b" " + rng.choice(ASCII_TOKENS).encode("latin-1")
    elif op == "drop_line":
        del lines[at]
    elif op == "blank":
        lines.insert(at, rng.choice((b"", b"   ", b"\t", b"\r")))
    elif op == "dup_line":
        lines.insert(at, lines[at])
    elif op == "join" and at + 1 < len(lines):
        lines[at:at + 2] = [lines[at] + b" " + lines[at + 1]]
    else:
        lines[at] = lines[at] + rng.choice((b"\x00", b"\xff\xfe", b"\x0b", b"\x0c 1"))
    ply.body = b"\n".join(lines)
    return f"ascii:{op}@{at}"


def mutate_ply(rng: random.Random, data: bytes, binary: bool) -> tuple[bytes, list[str]]:
    """One to three header or body mutations of a PLY (binary or ascii)."""
    ply = PlyParts.parse(data)
    order = ">" if any("big_endian" in line for line in ply.lines) else "<"
    done = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        if rng.random() < 0.45:
            done.append(_mutate_header(rng, ply))
        elif binary:
            done.append(_mutate_binary_body(rng, ply, order))
        else:
            done.append(_mutate_ascii_body(rng, ply))
    return ply.to_bytes(), done


# --- WebP textures and meta.json ----------------------------------------------------------------------------------

def _image(rng: random.Random, size: tuple[int, int], fmt: str, **options) -> bytes:
    pixels = np.frombuffer(rng.randbytes(size[0] * size[1] * 4), np.uint8).reshape(size[1], size[0], 4)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").convert("RGBA" if fmt != "JPEG" else "RGB").save(buffer, fmt, **options)
    return buffer.getvalue()


def mutate_webp(rng: random.Random, data: bytes, others: list[bytes]) -> tuple[bytes, str]:
    """A damaged, resized, replaced or re-encoded version of a texture."""
    webp = bytearray(data or b"\0")  # an earlier mutation may have emptied it
    op = rng.choice(("size", "size", "chunk", "riff", "truncate", "flip", "flip", "replace", "reencode", "swap",
                     "vp8x"))
    if op == "size" and webp[12:16] == b"VP8L":
        width = rng.choice((1, 2, 4, 16, 19, 20, 21, 64, 192, 512, 960, 1024, 4096, 16383, 16384))
        height = rng.choice((1, 2, 4, 16, 17, 64, 1024, 1025, 16383, 16384))
        bits = int.from_bytes(webp[21:25], "little") & ~((1 << 28) - 1)
        webp[21:25] = (bits | (width - 1) | ((height - 1) << 14)).to_bytes(4, "little")
        return bytes(webp), f"webp:size {width}x{height}"
    if op == "chunk":
        webp[12:16] = rng.choice((b"VP8 ", b"VP8X", b"ALPH", b"XXXX", b"vp8l"))
    elif op == "riff":
        webp[4:8] = rng.choice((0, 1, 0xFFFFFFFF, len(webp), len(webp) + 100)).to_bytes(4, "little")
    elif op == "truncate":
        del webp[rng.randrange(len(webp)):]
    elif op == "flip":
        at = rng.randrange(len(webp))
        webp[at] ^= 1 << rng.randrange(8)
        return bytes(webp), f"webp:flip@{at}"
    elif op == "replace":
        choice = rng.randrange(6)
        return ([b"", b"RIFF", _image(rng, (4, 4), "PNG"), _image(rng, (8, 8), "JPEG"),
                 png_claiming(20000, 20000), b"GIF89a" + bytes(20)][choice], f"webp:replace {choice}")
    elif op == "reencode":
        size = rng.choice(((20, 16), (20, 15), (19, 16), (16, 16), (20, 64), (64, 64), (192, 1), (192, 2),
                           (512, 1), (960, 1), (1, 1), (300, 1)))
        lossless = rng.random() < 0.7
        return _image(rng, size, "WEBP", lossless=lossless, quality=50), f"webp:reencode {size} {lossless}"
    elif op == "swap" and others:
        return rng.choice(others), "webp:swap"
    elif op == "vp8x":
        canvas = rng.choice(((20, 16), (16383, 16383), (1 << 24, 1 << 24), (1, 1)))
        extended = (b"VP8X" + (10).to_bytes(4, "little") + b"\x10\0\0\0"
                    + (canvas[0] - 1).to_bytes(3, "little") + (canvas[1] - 1).to_bytes(3, "little"))
        rest = bytes(webp[12:])
        return (b"RIFF" + (4 + len(extended) + len(rest)).to_bytes(4, "little") + b"WEBP" + extended + rest,
                f"webp:vp8x {canvas}")
    return bytes(webp), f"webp:{op}"


def _json_slots(value, depth: int = 0) -> list[tuple[object, object]]:
    """Every (container, key/index) in a JSON value, to pick one to change."""
    slots: list[tuple[object, object]] = []
    if depth > 4:
        return slots
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        slots.append((value, key))
        slots.extend(_json_slots(child, depth + 1))
    return slots


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def mutate_meta(rng: random.Random, text: str) -> tuple[bytes, str]:
    """A changed value, key or list in meta.json, or damaged JSON text (as the bytes to write)."""
    meta = json.loads(text)
    op = rng.choice(("value", "value", "value", "delete", "add", "length", "text", "literal", "nest"))
    slots = _json_slots(meta)
    container, key = rng.choice(slots)
    if op == "value":
        container[key] = rng.choice(JSON_VALUES + ("means_l.webp", "shN_labels.webp", "quats.webp"))
        return _utf8(json.dumps(meta)), f"meta:value {key}"
    if op == "delete":
        del container[key]
        return _utf8(json.dumps(meta)), f"meta:delete {key}"
    if op == "add":
        target = container[key] if isinstance(container[key], dict) else meta
        if not isinstance(target, dict):  # an earlier mutation made the whole file a list
            return _utf8(text), "meta:add (no object)"
        target[rng.choice(("version", "count", "shN", "opacities", "model", "extra", "files"))] = rng.choice(
            JSON_VALUES)
        return _utf8(json.dumps(meta)), "meta:add"
    if op == "length":
        lists = [(c, k) for c, k in slots if isinstance(c[k], list) and c[k]]
        container, key = rng.choice(lists)
        if rng.random() < 0.5:
            container[key] = container[key][:-1]
        else:
            container[key] = [*container[key], container[key][-1]]
        return _utf8(json.dumps(meta)), f"meta:length {key}"
    text = json.dumps(meta, indent=rng.choice((None, 1)))
    if op == "literal":
        numbers = [i for i, c in enumerate(text) if c.isdigit() and not text[i - 1].isdigit()]
        at = rng.choice(numbers)
        end = at
        while end < len(text) and (text[end].isdigit() or text[end] in ".e-+"):
            end += 1
        literal = rng.choice(("NaN", "Infinity", "-Infinity", "9" * 400, "1e999", "-0", "1" * 5000, "0x10", "01"))
        return _utf8(text[:at] + literal + text[end:]), f"meta:literal {literal[:10]}@{at}"
    if op == "nest":
        depth = rng.choice((10, 500, 2000, 100_000))
        return _utf8("[" * depth + text + "]" * depth * rng.randrange(2)), f"meta:nest {depth}"
    at = rng.randrange(len(text) + 1)
    damage = rng.choice(("truncate", "insert", "bom", "utf16"))
    if damage == "truncate":
        return _utf8(text[:at]), f"meta:truncate@{at}"
    if damage == "insert":
        junk = rng.choice(("}", "{", ",", '"', "\\", "\x00", "\udcff"))
        return _utf8(text[:at] + junk + text[at:]), f"meta:insert@{at}"
    return (_utf8("\ufeff" + text) if damage == "bom" else text.encode("utf-16")), f"meta:{damage}"


def _plain(path: Path) -> bool:
    """A regular file that an earlier mutation did not turn into a folder or a link to /dev/zero."""
    return path.is_file() and not path.is_symlink()


def mutate_sog_files(rng: random.Random, folder: Path) -> list[str]:
    """One to three changes to the files of a SOG folder: meta.json values or text, textures, files removed."""
    textures = sorted(p.name for p in folder.glob("*.webp"))
    done = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        target = rng.random()
        if target < 0.45 and (folder / "meta.json").exists():
            try:
                data, what = mutate_meta(rng, (folder / "meta.json").read_text())
            except (ValueError, IndexError, RecursionError):  # an earlier mutation damaged the text
                continue
            (folder / "meta.json").write_bytes(data)
            done.append(what)
        elif target < 0.9:
            name = rng.choice(textures)
            others = [(folder / t).read_bytes() for t in textures if t != name and _plain(folder / t)]
            if _plain(folder / name):
                data, what = mutate_webp(rng, (folder / name).read_bytes(), others)
                (folder / name).write_bytes(data)
                done.append(f"{name} {what}")
        else:
            name = rng.choice(textures)
            path = folder / name
            action = rng.choice(("delete", "folder", "dev-zero"))
            if _plain(path):
                path.unlink()
                if action == "folder":
                    path.mkdir()
                elif action == "dev-zero":
                    path.symlink_to("/dev/zero")
            done.append(f"{name} {action}")
    return done


# --- Streamed SOG ------------------------------------------------------------------------------------------------

CHUNK_NAMES = ("../decoy/meta.json", "/etc/passwd", "0_0", "0_0/../../decoy/meta.json", "./0_0/meta.json", "",
               "0_0//meta.json", "0_0/meta.json", "missing/meta.json", "0_0/meta.json\x00", "C:\\x\\meta.json",
               "0_0/scales.webp", "lod-meta.json", "1_0", "~/meta.json", "0_0/meta.json/")
"""Chunk names a hostile lod-meta.json may give: outside the folder, absolute, a folder, a texture, itself."""


def mutate_lod(rng: random.Random, folder: Path) -> list[str]:
    """One to three changes to a Streamed SOG: lod-meta.json values or text, chunk names, chunk files, chunk
    folders removed or turned into links that leave the scene's folder."""
    meta = folder / "lod-meta.json"
    chunks = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
    done = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        target = rng.random()
        if target < 0.4 and _plain(meta):
            try:
                data, what = mutate_meta(rng, meta.read_text())
            except (ValueError, IndexError, RecursionError):  # an earlier mutation damaged the text
                continue
            meta.write_bytes(data)
            done.append(f"lod-{what}")
        elif target < 0.55 and _plain(meta):
            try:
                parsed = json.loads(meta.read_text())
                names = parsed["filenames"]
                index = rng.randrange(len(names))
                names[index] = rng.choice(CHUNK_NAMES)
            except (ValueError, KeyError, TypeError, IndexError, RecursionError):
                continue
            meta.write_bytes(_utf8(json.dumps(parsed)))
            done.append(f"lod-meta:filenames[{index}]={names[index]!r}")
        elif target < 0.85 and chunks:
            chunk = rng.choice(chunks)
            if (folder / chunk).is_dir() and not (folder / chunk).is_symlink():
                done += [f"{chunk}/{what}" for what in mutate_sog_files(rng, folder / chunk)]
        elif chunks:
            chunk = rng.choice(chunks)
            path = folder / chunk
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                action = rng.choice(("delete", "link-decoy", "link-root", "link-self", "file"))
                if action == "link-decoy":
                    path.symlink_to(folder.parent / "decoy", target_is_directory=True)
                elif action == "link-root":
                    path.symlink_to("/", target_is_directory=True)
                elif action == "link-self":
                    path.symlink_to(".", target_is_directory=True)
                elif action == "file":
                    path.write_bytes(b"not a folder")
                done.append(f"{chunk} {action}")
    return done


# --- ZIP bundles --------------------------------------------------------------------------------------------------

def bundle_from_folder(rng: random.Random, folder: Path) -> tuple[bytes, list[str]]:
    """A ZIP of the folder's SOG files with random entry methods, order and extras."""
    names = sorted(p.name for p in folder.iterdir() if _plain(p) and p.suffix in (".webp", ".json"))
    rng.shuffle(names)
    done = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            method = zipfile.ZIP_DEFLATED if rng.random() < 0.3 else zipfile.ZIP_STORED
            entry = name
            roll = rng.random()
            if roll < 0.03:
                entry = "dir/" + name
                done.append(f"zip:dir {name}")
            elif roll < 0.05:
                continue
            archive.writestr(zipfile.ZipInfo(entry, (2020, 1, 1, 0, 0, 0)), (folder / name).read_bytes(),
                             compress_type=method)
            if rng.random() < 0.03:
                extra = entry + "x" if rng.random() < 0.5 else "extra.bin"
                if extra not in archive.namelist():
                    archive.writestr(extra, b"x" * 10)
    return buffer.getvalue(), done


def mutate_zip(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """One change to a ZIP's structure: a header field, the end record, or the bytes around and inside it."""
    buffer = bytearray(data)
    entries, end = layout(data)
    op = rng.choice(("local", "central", "central", "end", "truncate", "append", "prepend", "flip", "comment"))
    if op in ("local", "central") and entries:
        entry = rng.choice(entries)
        fields = LOCAL_FIELDS if op == "local" else CENTRAL_FIELDS
        name = rng.choice(sorted(fields))
        offset, fmt = fields[name]
        base = entry.local if op == "local" else entry.central
        old = struct.unpack_from(fmt, buffer, base + offset)[0]
        value = rng.choice((*ZIP_VALUES, old + 1, old - 1, old * 2))
        set_field(buffer, base, fields[name], value)
        return bytes(buffer), f"zip:{op} {entry.name} {name}={value}"
    if op == "end":
        name = rng.choice(sorted(END_FIELDS))
        value = rng.choice(ZIP_VALUES)
        set_field(buffer, end, END_FIELDS[name], value)
        return bytes(buffer), f"zip:end {name}={value}"
    if op == "truncate":
        at = rng.randrange(len(buffer))
        return bytes(buffer[:at]), f"zip:truncate@{at}"
    if op == "append":
        return bytes(buffer) + rng.randbytes(rng.choice((1, 22, 100))), "zip:append"
    if op == "prepend":
        return rng.randbytes(rng.choice((4, 100))) + bytes(buffer), "zip:prepend"
    if op == "flip" and entries:
        entry = rng.choice(entries)
        at = entry.data + rng.randrange(max(1, entry.compressed))
        buffer[at] ^= 1 << rng.randrange(8)
        return bytes(buffer), f"zip:flip {entry.name}@{at}"
    set_field(buffer, end, END_FIELDS["comment_length"], rng.choice((1, 100)))
    return bytes(buffer), "zip:comment"


# --- cases --------------------------------------------------------------------------------------------------------

def case_plan(kind: str, seed: int) -> tuple[str, str]:
    """(seed scene, command) of case ``(kind, seed)``: half info, 30% decompress, 20% compress."""
    rng = random.Random(f"plan:{kind}:{seed}")
    return rng.choice(SEEDS[kind]), rng.choices(COMMANDS, weights=(5, 3, 2))[0]


def build_case(kind: str, seed: int, seeds: Path, workdir: Path, command: str | None = None) -> Case:
    """Write the input of case ``(kind, seed)`` under ``workdir`` (emptied first) and describe it; ``command``
    overrides the one the seed chooses."""
    scene, chosen = case_plan(kind, seed)
    rng = random.Random(f"{kind}:{seed}")
    source = seeds / scene
    command = command or chosen
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "in").mkdir(parents=True)
    (workdir / "out").mkdir()
    case = Case(kind, seed, command, workdir / "in" / source.name, workdir / "out")
    if kind in ("ply_binary", "ply_ascii", "compressed_ply"):
        data, case.mutations = mutate_ply(rng, source.read_bytes(), binary=kind != "ply_ascii")
        case.input.write_bytes(data)
        return case
    folder = workdir / "in" / "scene"
    if kind == "sog_lod":
        shutil.copytree(source, folder)
        shutil.copytree(seeds / "decoy", workdir / "in" / "decoy")  # a valid scene a chunk link may point at
        case.mutations = mutate_lod(rng, folder)
        case.input = folder if rng.random() < 0.4 else folder / "lod-meta.json"
        if command != "compress" and rng.random() < 0.5:
            case.lod = rng.choice((0, 1, 2, -1, 3, -4))
        return case
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("*.sog"))
    case.mutations = mutate_sog_files(rng, folder) if kind == "sog_folder" or rng.random() < 0.5 else []
    if kind == "sog_folder":
        choice = rng.random()
        if choice < 0.4:
            case.input = folder
        elif choice < 0.8 or not (folder / "meta.json").exists():
            case.input = folder / "meta.json"
        else:
            case.input = (folder / "meta.json").rename(folder / "scene.json")
        return case
    data, done = bundle_from_folder(rng, folder)
    case.mutations += done
    if rng.random() < 0.75:
        data, what = mutate_zip(rng, data)
        case.mutations.append(what)
    shutil.rmtree(folder)
    shutil.copytree(seeds / "decoy", folder)  # a valid other scene beside the bundle
    case.input = folder / "bundle.sog"
    case.input.write_bytes(data)
    return case
