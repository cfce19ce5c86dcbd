"""Read a SOG (v2, or the v1 layout of sogs 1.1.0) into a splat set.

Accepted inputs: a ``.sog`` bundle, a ``meta.json`` path, or a folder holding ``meta.json``. Every size comes from
the images themselves and is checked against ``count`` before anything is allocated from it.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from sogs_compressor.encode import attributes as attr
from sogs_compressor.encode.layout import image_to_rows
from sogs_compressor.errors import CorruptSogError, InputNotFoundError
from sogs_compressor.splats import COEFFS_PER_DEGREE, MODELS, SplatSet
from sogs_compressor.write.webp import decode_webp

MAX_META_BYTES = 64 * 2**20
MAX_TEXELS = 16384 * 16384
Image.MAX_IMAGE_PIXELS = MAX_TEXELS  # legit SOG textures go up to WebP's 16383 x 16383 limit

FileGetter = Callable[[str], bytes]


def open_sog(path: str | Path) -> tuple[FileGetter, int, Callable[[], None]]:
    """(get(name) -> bytes, total bytes on disk, close) for a bundle, a meta.json or a folder."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        folder = path
    elif zipfile.is_zipfile(path):
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as error:
            raise CorruptSogError(f"{path.name}: not a readable .sog bundle ({error})") from None
        names = set(archive.namelist())

        def get_entry(name: str) -> bytes:
            if name not in names:
                raise CorruptSogError(f"{path.name}: the bundle has no entry {name!r}")
            info = archive.getinfo(name)
            if info.file_size > MAX_TEXELS * 4 + MAX_META_BYTES:
                raise CorruptSogError(f"{path.name}: entry {name!r} is implausibly large ({info.file_size} bytes)")
            try:
                return archive.read(name)
            except (zipfile.BadZipFile, OSError, NotImplementedError) as error:
                raise CorruptSogError(f"{path.name}: cannot read entry {name!r} ({error})") from None

        return get_entry, path.stat().st_size, archive.close
    else:
        folder = path.parent

    def get_file(name: str) -> bytes:
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            raise CorruptSogError(f"meta.json names a file outside its folder: {name!r}")
        target = folder / name
        if not target.is_file():
            raise CorruptSogError(f"{folder}: missing file {name!r} named in meta.json")
        return target.read_bytes()

    total = sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and (p.suffix in (".webp", ".json")))
    return get_file, total, lambda: None


def read_meta(get: FileGetter) -> dict:
    raw = get("meta.json")
    if len(raw) > MAX_META_BYTES:
        raise CorruptSogError(f"meta.json is {len(raw)} bytes, over the {MAX_META_BYTES} limit")
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptSogError(f"meta.json is not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise CorruptSogError("meta.json is not a JSON object")
    return meta


def read_sog(path: str | Path):
    """Decode a SOG into a ``Scene`` (format ``sog`` or ``sog_v1``)."""
    from sogs_compressor.read import Scene

    get, size, close = open_sog(path)
    try:
        meta = read_meta(get)
        version = meta.get("version")
        if version == 2:
            splats, fmt = decode_v2(meta, get), "sog"
        elif version is None:
            splats, fmt = decode_v1(meta, get), "sog_v1"
        else:
            raise CorruptSogError(f"meta.json has version {version!r}; only SOG version 2 and sogs v1 are supported")
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise CorruptSogError(f"{Path(path).name}: malformed SOG ({type(error).__name__}: {error})") from None
    finally:
        close()
    return Scene(splats=splats, format=fmt, path=str(path), bytes=size, header={"meta": _meta_summary(meta)})


def decode_v2(meta: dict, get: FileGetter) -> SplatSet:
    count = _count(meta["count"])
    images = _Images(get, count)
    low = images.rows(meta["means"]["files"][0])
    high = images.rows(meta["means"]["files"][1])
    positions = attr.decode_means(low[:, :3], high[:, :3], _floats(meta["means"]["mins"], 3),
                                  _floats(meta["means"]["maxs"], 3))
    rotations = attr.decode_quats(images.rows(meta["quats"]["files"][0]))
    scales = attr.decode_codebook(images.rows(meta["scales"]["files"][0])[:, :3], _codebook(meta["scales"]))
    sh0 = images.rows(meta["sh0"]["files"][0])
    f_dc = attr.decode_codebook(sh0[:, :3], _codebook(meta["sh0"]))
    opacity = attr.decode_opacity_logit(sh0[:, 3])
    f_rest = np.zeros((count, 0), np.float32)
    if "shN" in meta:
        shn = meta["shN"]
        bands = int(shn["bands"])
        if bands not in (1, 2, 3):
            raise CorruptSogError(f"shN.bands is {bands}, expected 1, 2 or 3")
        coeffs = COEFFS_PER_DEGREE[bands]
        palette = int(shn["count"])
        centroid_image = images.image(shn["files"][0], per_splat=False)
        if not 1 <= palette <= centroid_image.shape[0] * 64:
            raise CorruptSogError(f"shN.count {palette} does not fit the centroid texture")
        centroids = attr.decode_codebook(attr.centroids_from_image(centroid_image, palette, coeffs),
                                         _codebook(shn))
        labels = attr.decode_labels(images.rows(shn["files"][1]))
        if labels.size and labels.max() >= palette:
            raise CorruptSogError(f"shN label {int(labels.max())} is not below shN.count {palette}")
        f_rest = centroids[labels]
    model = meta.get("model", "default")
    return SplatSet(positions=positions, log_scales=scales, rotations=rotations, opacity_logits=opacity,
                    f_dc=f_dc, f_rest=np.ascontiguousarray(f_rest, np.float32),
                    model=model if model in MODELS else "default")


def decode_v1(meta: dict, get: FileGetter) -> SplatSet:
    """The layout of ``sogs`` 1.1.0 (formats.md 3.1): min/max-quantized channels, logit opacity."""
    if "opacities" in meta:
        raise CorruptSogError("this is the sogs 1.0.0 layout (separate opacities image), which is not supported")
    count = _count(meta["means"]["shape"][0])
    images = _Images(get, count)
    low = images.rows(meta["means"]["files"][0])
    high = images.rows(meta["means"]["files"][1])
    positions = attr.decode_means(low[:, :3], high[:, :3], _floats(meta["means"]["mins"], 3),
                                  _floats(meta["means"]["maxs"], 3))
    scales = _lerp(images.rows(meta["scales"]["files"][0])[:, :3], meta["scales"]["mins"], meta["scales"]["maxs"])
    rotations = attr.decode_quats(images.rows(meta["quats"]["files"][0]))
    sh0 = _lerp(images.rows(meta["sh0"]["files"][0]), meta["sh0"]["mins"], meta["sh0"]["maxs"])
    f_rest = np.zeros((count, 0), np.float32)
    if "shN" in meta:
        shn = meta["shN"]
        centroid_image = images.image(shn["files"][0], per_splat=False)
        width = centroid_image.shape[1]
        if width % 64 or width // 64 not in COEFFS_PER_DEGREE[1:]:
            raise CorruptSogError(f"shN centroid texture is {width} wide; expected 192, 512 or 960")
        coeffs = width // 64
        palette = centroid_image.shape[0] * 64
        indices = attr.centroids_from_image(centroid_image, palette, coeffs)
        lo, hi = float(np.min(shn["mins"])), float(np.max(shn["maxs"]))
        centroids = (lo + (hi - lo) * indices.astype(np.float64) / 255.0).astype(np.float32)
        labels = attr.decode_labels(images.rows(shn["files"][1]))
        if labels.size and labels.max() >= palette:
            raise CorruptSogError(f"shN label {int(labels.max())} is outside the {palette} centroids")
        f_rest = centroids[labels]
    return SplatSet(positions=positions, log_scales=scales, rotations=rotations,
                    opacity_logits=sh0[:, 3].copy(), f_dc=np.ascontiguousarray(sh0[:, :3]),
                    f_rest=np.ascontiguousarray(f_rest, np.float32))


class _Images:
    """Decodes each named texture once and checks its size against the splat count."""

    def __init__(self, get: FileGetter, count: int) -> None:
        self.get = get
        self.count = count
        self.width: int | None = None

    def image(self, name: str, per_splat: bool = True) -> np.ndarray:
        if not isinstance(name, str):
            raise CorruptSogError(f"file name {name!r} in meta.json is not a string")
        try:
            image = decode_webp(self.get(name))
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise CorruptSogError(f"{name}: not a decodable WebP image ({error})") from None
        if per_splat:
            height, width = image.shape[:2]
            if self.width is None:
                self.width = width
            elif width != self.width:
                raise CorruptSogError(f"{name} is {width} wide but means_l is {self.width}: widths must be equal")
            if width * height < self.count:
                raise CorruptSogError(f"{name} is {width}x{height}, too small for {self.count} splats")
        return image

    def rows(self, name: str) -> np.ndarray:
        return image_to_rows(self.image(name), self.count)


def _count(value) -> int:
    count = int(value)
    if count < 1 or count > MAX_TEXELS:
        raise CorruptSogError(f"meta.json count {count} is out of range")
    return count


def _floats(values, n: int) -> np.ndarray:
    array = np.asarray(values, np.float64)
    if array.shape != (n,) or not np.all(np.isfinite(array)):
        raise CorruptSogError(f"expected {n} finite numbers in meta.json, got {values!r}"[:200])
    return array


def _codebook(section: dict) -> np.ndarray:
    """256 finite numbers; a null first entry (old splat-transform k-means bug) takes its neighbour's value."""
    raw = list(section["codebook"])
    if len(raw) != 256:
        raise CorruptSogError(f"a codebook has {len(raw)} entries, expected 256")
    if raw[0] is None and raw[1] is not None:
        raw[0] = raw[1]
    return _floats(raw, 256).astype(np.float32)


def _lerp(bytes_: np.ndarray, mins, maxs) -> np.ndarray:
    n = bytes_.shape[1]
    lo = _floats(mins, n)
    hi = _floats(maxs, n)
    return (lo + (hi - lo) * bytes_.astype(np.float64) / 255.0).astype(np.float32)


def _meta_summary(meta: dict) -> dict:
    summary = {"version": meta.get("version"), "generator": (meta.get("asset") or {}).get("generator")}
    if isinstance(meta.get("shN"), dict):
        summary["palette"] = meta["shN"].get("count")
    return summary
