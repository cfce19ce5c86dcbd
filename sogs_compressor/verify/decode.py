"""Read back the SOG just written and decode it on the compute device: the verifier's first half.

The check is real: the files are read from disk as a viewer would get them, every WebP is decoded (in parallel:
libwebp releases the GIL), and the attributes are decoded with the format's formulas, on the device the
errors and the renders are computed on (``encode/attributes_torch.py``'s decoders, twins of the host ones).
A SOG we wrote that does not decode is an output error, not a corrupt input.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from sogs_compressor.cpus import usable_cpus
from sogs_compressor.encode import attributes as attr
from sogs_compressor.encode import attributes_torch as attr_torch
from sogs_compressor.errors import OutputError, SogsError
from sogs_compressor.result import OutputFile
from sogs_compressor.splats import COEFFS_PER_DEGREE, MODELS
from sogs_compressor.splats_torch import SplatTensors
from sogs_compressor.write.sog import texture_names
from sogs_compressor.write.webp import decode_webp


def written_sog(files: list[OutputFile]) -> str:
    """The file a reader of our output opens: the bundle if there is one, else the folder's meta.json."""
    roles = {f.role: f.path for f in files}
    target = roles.get("bundle") or roles.get("meta")
    if target is None:
        raise OutputError("nothing was written to verify")
    return target


def read_written(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, decoded RGBA images by file name) of the SOG at ``path``, the WebPs decoded in parallel."""
    from sogs_compressor.read.sog import open_sog, read_meta

    try:
        get, _, close = open_sog(path)
        try:
            meta = read_meta(get)
            blobs = {name: get(name) for name in texture_names(meta)}
        finally:
            close()
        workers = max(1, min(len(blobs), usable_cpus()))
        with ThreadPoolExecutor(workers, thread_name_prefix="verify-webp") as pool:
            images = dict(zip(blobs, pool.map(decode_webp, blobs.values()), strict=True))
    except (SogsError, OSError, ValueError, KeyError, TypeError) as error:
        raise OutputError(f"verification failed: the SOG written to {path} does not read back ({error})") from None
    return meta, images


def decode_on_device(meta: dict, images: dict[str, np.ndarray], device: torch.device) -> SplatTensors:
    """Decode a SOG v2 (``meta`` + its decoded images) into tensors on ``device``; the host reader's values."""
    try:
        count = int(meta["count"])

        def rows(name: str) -> torch.Tensor:
            flat = images[name].reshape(-1, 4)
            if flat.shape[0] < count:
                raise ValueError(f"{name} holds {flat.shape[0]} texels for {count} splats")
            return torch.from_numpy(np.array(flat[:count])).to(device)  # a writable copy for torch

        def codebook(section: dict) -> torch.Tensor:
            values = torch.tensor(section["codebook"], dtype=torch.float32, device=device)
            if values.shape != (256,):
                raise ValueError("a codebook does not hold 256 entries")
            return values

        means = meta["means"]
        low, high = rows(means["files"][0]), rows(means["files"][1])
        positions = attr_torch.decode_means(low[:, :3], high[:, :3], means["mins"], means["maxs"])
        del low, high
        rotations = attr_torch.decode_quats(rows(meta["quats"]["files"][0]))
        log_scales = codebook(meta["scales"])[rows(meta["scales"]["files"][0])[:, :3].long()]
        sh0 = rows(meta["sh0"]["files"][0])
        f_dc = codebook(meta["sh0"])[sh0[:, :3].long()]
        opacity_logits = attr_torch.decode_opacity_logit(sh0[:, 3])
        del sh0
        f_rest = torch.zeros((count, 0), dtype=torch.float32, device=device)
        if "shN" in meta:
            shn = meta["shN"]
            coeffs = COEFFS_PER_DEGREE[int(shn["bands"])]
            palette = int(shn["count"])
            indices = np.array(attr.centroids_from_image(images[shn["files"][0]], palette, coeffs))
            centroids = codebook(shn)[torch.from_numpy(indices).to(device).long()]
            labels = attr_torch.decode_labels(rows(shn["files"][1]))
            if labels.numel() and int(labels.max()) >= palette:
                raise ValueError(f"a palette label is not below shN.count {palette}")
            f_rest = centroids[labels]
            del labels, centroids
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise OutputError(f"verification failed: the SOG we wrote does not decode ({type(error).__name__}: "
                          f"{error})") from None
    model = meta.get("model", "default")
    return SplatTensors(positions=positions, log_scales=log_scales, rotations=rotations,
                        opacity_logits=opacity_logits, f_dc=f_dc, f_rest=f_rest,
                        model=model if model in MODELS else "default")


def decode_written(files: list[OutputFile], device: torch.device) -> SplatTensors:
    """Read back what ``write_sog`` wrote (``files``) and decode it on ``device``."""
    meta, images = read_written(written_sog(files))
    return decode_on_device(meta, images, device)
