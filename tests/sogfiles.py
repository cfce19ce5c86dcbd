"""Test helpers that write SOG files: our v2 encoder for small scenes, and a sogs-1.1.0-style v1 writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from sogs_compressor.sog.encode import encode_sog
from sogs_compressor.sog.means import encode_means
from sogs_compressor.sog.quats import encode_quats
from sogs_compressor.sog.sh_palette import centroid_image, encode_labels
from sogs_compressor.sog.webp import encode_webp
from sogs_compressor.splats import SplatSet
from sogs_compressor.write.sog import write_sog


def write_v2(splats: SplatSet, folder: Path, layout: str = "both", palette: int = 64) -> Path:
    """Encode with our encoder (Morton order not applied: splat order kept) and write; returns the folder."""
    encoded = encode_sog(splats, palette_size=palette, iterations=3, seed=0, device=torch.device("cpu"))
    webps = {name: encode_webp(image, method=0, quality=0) for name, image in encoded.images.items()}
    write_sog(folder, "scene", layout, encoded.meta, webps)
    return folder


def _minmax_bytes(values: np.ndarray, lo, hi) -> np.ndarray:
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.clip(np.rint((values - lo) / span * 255), 0, 255).astype(np.uint8)


def write_v1(splats: SplatSet, folder: Path, clusters: int = 64) -> Path:
    """The layout of sogs 1.1.0 (formats.md 3.1) for a perfect-square count: n x n images, min/max quantized.

    The "palette" here is simply every splat's own f_rest rounded to 8 bits when count <= clusters*... : each
    splat gets centroid = its own row (count must be a multiple of 64), which is what the v1 reader must decode.
    """
    n = int(round(np.sqrt(splats.count)))
    assert n * n == splats.count, "v1 needs a perfect square count"
    folder.mkdir(parents=True, exist_ok=True)

    def save(name: str, rows: np.ndarray, width: int, height: int) -> None:
        image = np.zeros((height * width, 4), np.uint8)
        image[: rows.shape[0], : rows.shape[1]] = rows
        if rows.shape[1] == 3:
            image[: rows.shape[0], 3] = 255
        (folder / name).write_bytes(encode_webp(image.reshape(height, width, 4), method=0, quality=0))

    low, high, mins, maxs = encode_means(splats.positions)
    save("means_l.webp", low, n, n)
    save("means_u.webp", high, n, n)
    s_lo, s_hi = splats.log_scales.min(0), splats.log_scales.max(0)
    save("scales.webp", _minmax_bytes(splats.log_scales, s_lo, s_hi), n, n)
    save("quats.webp", encode_quats(splats.rotations), n, n)
    sh0 = np.concatenate([splats.f_dc, splats.opacity_logits[:, None]], axis=1)
    c_lo, c_hi = sh0.min(0), sh0.max(0)
    save("sh0.webp", _minmax_bytes(sh0, c_lo, c_hi), n, n)
    meta = {
        "means": {"shape": [splats.count, 3], "dtype": "float32", "mins": mins, "maxs": maxs,
                  "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"shape": [splats.count, 3], "dtype": "float32", "mins": s_lo.tolist(), "maxs": s_hi.tolist(),
                   "files": ["scales.webp"]},
        "quats": {"shape": [splats.count, 4], "dtype": "uint8", "encoding": "quaternion_packed",
                  "files": ["quats.webp"]},
        "sh0": {"shape": [splats.count, 1, 4], "dtype": "float32", "mins": c_lo.tolist(), "maxs": c_hi.tolist(),
                "files": ["sh0.webp"]},
    }
    if splats.sh_degree:
        coeffs = splats.coeffs_per_channel
        lo, hi = float(splats.f_rest.min()), float(splats.f_rest.max())
        indices = _minmax_bytes(splats.f_rest, lo, hi)
        (folder / "shN_centroids.webp").write_bytes(
            encode_webp(centroid_image(indices, coeffs), method=0, quality=0))
        labels = encode_labels(np.arange(splats.count))[:, :3]
        save("shN_labels.webp", labels, n, n)
        meta["shN"] = {"shape": [splats.count, 3 * coeffs], "dtype": "float32", "mins": lo, "maxs": hi,
                       "quantization": 8, "files": ["shN_centroids.webp", "shN_labels.webp"]}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder
