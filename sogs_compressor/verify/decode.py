"""The verifier: what a reader of our output will decode, measured against what we meant to write.

Three checks together make the real one. Each texture's WebP bytes are decoded as soon as they are encoded and
must equal the texture exactly (``sog.webp.WebpEncoder``'s round trip); the files on disk are read back and
must hold those bytes and our meta.json (``confirm_written``); and the textures plus the meta are decoded with
the format's formulas (``decode_on_device``, the ``*_on_device`` twins of the host decoders in ``sog/``) into
the splats a reader gets, on the device where the errors and the renders are computed. Because the decode needs
only the textures and the meta, it runs while the WebP encoders are still working. A SOG we wrote that fails
any check is an output error, not a corrupt input.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from sogs_compressor.errors import OutputError
from sogs_compressor.result import OutputFile
from sogs_compressor.sog.colour import decode_opacity_logit_on_device
from sogs_compressor.sog.means import decode_means_on_device
from sogs_compressor.sog.meta import meta_bytes, texture_names
from sogs_compressor.sog.quats import decode_quats_on_device
from sogs_compressor.sog.sh_palette import centroids_from_image, decode_labels_on_device
from sogs_compressor.splats import COEFFS_PER_DEGREE, MODELS
from sogs_compressor.splats_torch import SplatTensors


def confirm_written(files: list[OutputFile], meta: dict, webps: dict[str, bytes]) -> None:
    """Read every written SOG file back (the bundle's entries, the folder's files) and check that it holds exactly
    the encoded WebP bytes and our meta.json; OutputError naming the first file that does not."""
    expected = {name: webps[name] for name in texture_names(meta)}
    expected["meta.json"] = meta_bytes(meta)
    for output in files:
        path = Path(output.path)
        try:
            if output.role == "bundle":
                with zipfile.ZipFile(path) as archive:
                    if sorted(archive.namelist()) != sorted(expected):
                        raise OutputError(f"verification failed: {path.name} holds {sorted(archive.namelist())}")
                    for name, data in expected.items():
                        if archive.read(name) != data:  # reading also checks the entry's CRC
                            raise OutputError(f"verification failed: entry {name} of {path.name} differs from "
                                              "what was encoded")
            elif output.role in ("texture", "meta") and path.read_bytes() != expected.get(path.name):
                raise OutputError(f"verification failed: {path} differs from what was encoded")
        except (OSError, zipfile.BadZipFile, KeyError) as error:
            raise OutputError(f"verification failed: {path} does not read back ({error})") from None


def decode_on_device(meta: dict, images: dict[str, np.ndarray], device: torch.device) -> SplatTensors:
    """Decode a SOG v2 (``meta`` + its RGBA textures) into tensors on ``device``: the values the host reader
    (``sog/decode.py``) gives for the same files (tested)."""
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
        positions = decode_means_on_device(low[:, :3], high[:, :3], means["mins"], means["maxs"])
        del low, high
        rotations = decode_quats_on_device(rows(meta["quats"]["files"][0]))
        log_scales = codebook(meta["scales"])[rows(meta["scales"]["files"][0])[:, :3].long()]
        sh0 = rows(meta["sh0"]["files"][0])
        f_dc = codebook(meta["sh0"])[sh0[:, :3].long()]
        opacity_logits = decode_opacity_logit_on_device(sh0[:, 3])
        del sh0
        f_rest = torch.zeros((count, 0), dtype=torch.float32, device=device)
        if "shN" in meta:
            shn = meta["shN"]
            coeffs = COEFFS_PER_DEGREE[int(shn["bands"])]
            palette = int(shn["count"])
            indices = np.array(centroids_from_image(images[shn["files"][0]], palette, coeffs))
            centroids = codebook(shn)[torch.from_numpy(indices).to(device).long()]
            labels = decode_labels_on_device(rows(shn["files"][1]))
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
