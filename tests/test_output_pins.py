"""The encoder's output for fixed scenes and settings, pinned: a restructuring must not change a byte of it.

What is pinned is what a reader decodes: meta.json (its generator line, which names the tool's version, left out)
and every texture's pixels (lossless WebP decodes to exactly the encoder's images), not the WebP bytes
themselves, which also depend on the libwebp version Pillow bundles.
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
from sogs_compressor.sog.meta import GENERATOR
from sogs_compressor.sog.webp import decode_webp

SCENES = {
    "generated 4000 SH 0": lambda: generate_scene(4000, sh_degree=0, seed=21),
    "generated 3000 SH 3": lambda: generate_scene(3000, sh_degree=3, seed=22),
    "wide range 5000 SH 1": lambda: wide_range_scene(5000, seed=23, sh_degree=1),
}

PINS = {
    "generated 4000 SH 0": "abcf778b8b58bd9a372daf86efe8b3903b1a3bf99cac51cceab018986a5fe03e",
    "generated 3000 SH 3": "d0dad740bbd252e938efe2475dc11b3b9760e19e0f79f3378d22cb31a4bf6fd0",
    "wide range 5000 SH 1": "9fbaeaed883c944176145956aacb0ca181d15f677588153647b5c69c8bbf6b82",
}


def decoded_digest(bundle: Path) -> str:
    """sha256 over meta.json's bytes (without the version) and each texture's decoded pixels, in name order."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(bundle) as archive:
        for name in sorted(archive.namelist()):
            data = archive.read(name)
            digest.update(name.encode())
            if name.endswith(".webp"):
                data = np.ascontiguousarray(decode_webp(data)).tobytes()
            else:
                assert GENERATOR.encode() in data
                data = data.replace(GENERATOR.encode(), b"sogs-compressor")
            digest.update(data)
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
