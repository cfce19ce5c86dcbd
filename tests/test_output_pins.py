"""The encoder's output for fixed scenes and settings, pinned: a restructuring must not change a byte of it.

What is pinned is what a reader decodes: meta.json and every texture's pixels (lossless WebP decodes to exactly
the encoder's images), not the WebP bytes themselves, which also depend on the libwebp version Pillow bundles.
A deliberate change of the encoder's output (a new default, a fixed bug) updates these values in the same commit
and says so in CHANGELOG.md; ``python tests/test_output_pins.py`` prints the current ones.
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sogs_compressor.options import CompressOptions
from sogs_compressor.pipeline import compress_splats
from sogs_compressor.sample import generate_scene, wide_range_scene
from sogs_compressor.write.webp import decode_webp

SCENES = {
    "generated 4000 SH 0": lambda: generate_scene(4000, sh_degree=0, seed=21),
    "generated 3000 SH 3": lambda: generate_scene(3000, sh_degree=3, seed=22),
    "wide range 5000 SH 1": lambda: wide_range_scene(5000, seed=23, sh_degree=1),
}

PINS = {
    "generated 4000 SH 0": "1ca9e1c0445549996f9e2bc658b75185c1eefb4350e7e5c39a26e6a1c409566e",
    "generated 3000 SH 3": "478ba980aa19158168c44c07bd134b376ad136702b3468e4010eb74be79c05d6",
    "wide range 5000 SH 1": "226bf80102d7eef5af85a7bb38c52139986d641b90f3c235066bec35da69ab81",
}


def decoded_digest(bundle: Path) -> str:
    """sha256 over meta.json's bytes and each texture's decoded pixels, in name order."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(bundle) as archive:
        for name in sorted(archive.namelist()):
            data = archive.read(name)
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(decode_webp(data)).tobytes() if name.endswith(".webp") else data)
    return digest.hexdigest()


def digest_of(scene: str, folder: Path) -> str:
    options = CompressOptions(device="cpu", layout="bundle", quality_check="off", viewer="off")
    result = compress_splats(SCENES[scene](), folder, "pinned", options)
    bundle = next(Path(f.path) for f in result.output_files if f.role == "bundle")
    return decoded_digest(bundle)


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_output_is_pinned(scene, tmp_path):
    assert digest_of(scene, tmp_path) == PINS[scene]


if __name__ == "__main__":
    import tempfile

    for name in sorted(SCENES):
        with tempfile.TemporaryDirectory() as tmp:
            print(f'    "{name}": "{digest_of(name, Path(tmp))}",', file=sys.stdout, flush=True)
