"""GPU quantize stage (issue 4): same bytes as the CPU path, and how long it takes.

1. Encodes a generated scene (default 200K splats) with device cpu (numpy reference) and cuda (torch,
   the ``*_on_device`` twins in ``sog/``), with the exact and the rate-aware settings, and once with the codebook
   sample lowered so the device labels every value; asserts identical textures and meta.json.
2. Times the "quantize" stage of ``encode_sog`` at 1M and 4M splats on both, plus its parts on the device.

    python bench/check_gpu_encode.py                 # needs a CUDA GPU
    python bench/check_gpu_encode.py --device cpu --check-count 20000 --sizes 100000   # torch-on-CPU dry run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sogs_compressor import compute_policy as compute  # noqa: E402
from sogs_compressor.sample import generate_scene  # noqa: E402
from sogs_compressor.sog import codebook, colour, means, quats  # noqa: E402
from sogs_compressor.sog import encode as sog  # noqa: E402

CPU = torch.device("cpu")
SETTINGS = ({"rate_weight": 0.0, "position_bits": 16}, {"rate_weight": 2.0, "position_bits": 15})


def encode(splats, device: torch.device, **settings) -> sog.EncodedSog:
    return sog.encode_sog(splats, palette_size=0, iterations=1, seed=0, device=device, **settings)


def reference(splats, **settings) -> sog.EncodedSog:
    """The numpy path on the host, whatever ``QUANTIZE_ON_DEVICE`` says (the --device cpu dry run widens it)."""
    saved, compute.QUANTIZE_ON_DEVICE = compute.QUANTIZE_ON_DEVICE, frozenset()
    try:
        return encode(splats, CPU, **settings)
    finally:
        compute.QUANTIZE_ON_DEVICE = saved


def same_bytes(a: sog.EncodedSog, b: sog.EncodedSog) -> bool:
    return (repr(a.meta) == repr(b.meta) and a.images.keys() == b.images.keys()
            and all(np.array_equal(a.images[k], b.images[k]) for k in a.images))


def describe_difference(a: sog.EncodedSog, b: sog.EncodedSog) -> str:
    """Which textures differ, in how many texels, by how much; and which meta fields."""
    parts = []
    for name in a.images:
        diff = a.images[name].astype(np.int16) - b.images[name].astype(np.int16)
        texels = int(np.count_nonzero(np.any(diff, axis=-1)))
        if texels:
            parts.append(f"{name}: {texels} texels, max |byte diff| {int(np.abs(diff).max())}")
    for key in a.meta:
        if repr(a.meta[key]) != repr(b.meta.get(key)):
            parts.append(f"meta.{key} differs")
    return "; ".join(parts) or "identical"


def check(count: int, device: torch.device) -> bool:
    """Print, per setting, whether the device path gives the CPU path's bytes; True if all identical."""
    splats = generate_scene(count, sh_degree=0, seed=1)
    identical = True
    for settings in SETTINGS:
        expected = reference(splats, **settings)
        got = encode(splats, device, **settings)
        same = same_bytes(got, expected)
        identical &= same
        print(f"{count} splats, {settings}: {'identical' if same else describe_difference(got, expected)}")
    full = codebook.CODEBOOK_SAMPLE
    codebook.CODEBOOK_SAMPLE = 1 << 16  # sampled codebooks: every value labelled on the device
    try:
        for settings in SETTINGS:
            expected = reference(splats, **settings)
            got = encode(splats, device, **settings)
            same = same_bytes(got, expected)
            identical &= same
            print(f"{count} splats, sampled codebooks, {settings}: "
                  f"{'identical' if same else describe_difference(got, expected)}")
    finally:
        codebook.CODEBOOK_SAMPLE = full
    return identical


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def parts(splats, device: torch.device) -> dict[str, float]:
    """Device seconds of each piece of the stage (rate-aware settings, like the balanced preset)."""
    return {
        "means+coarsen": timed(lambda: means.encode_positions(splats, 15, device)),
        "quats": timed(lambda: quats.encode_quats_on_device(splats.rotations, device)),
        "opacity": timed(lambda: colour.encode_opacity_on_device(splats.opacity_logits, device)),
        "scales codebook": timed(lambda: codebook.codebook_for(splats.log_scales, 2.0, 0, ops=codebook.value_ops_for(device))),
        "sh0 codebook": timed(lambda: codebook.codebook_for(splats.f_dc, 2.0, 0, ops=codebook.value_ops_for(device))),
        "numpy quats (ref)": timed(lambda: quats.encode_quats(splats.rotations)),
    }


def quantize_seconds(encoded) -> float:
    """The per-splat encoders plus the wait for the two codebooks (built beside them, SH degree 0 here)."""
    return encoded.timings["quantize"] + encoded.timings.get("codebook_wait", 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a torch-on-CPU dry run")
    parser.add_argument("--check-count", type=int, default=200_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000])
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA GPU: run on a GPU machine, or pass --device cpu for a dry run of the torch path")
    if device.type == "cpu":
        compute.QUANTIZE_ON_DEVICE = frozenset({"cpu", "cuda"})  # run the torch path on the CPU
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (torch path)"
    print(f"device: {name}; torch {torch.__version__}")

    encode(generate_scene(20_000, sh_degree=0, seed=2), device, **SETTINGS[1])  # warm-up (context, kernels)
    identical = check(args.check_count, device)

    rows = []
    for count in args.sizes:
        splats = generate_scene(count, sh_degree=0, seed=3)
        for settings in SETTINGS:
            expected = reference(splats, **settings)
            on_device = encode(splats, device, **settings)
            rows.append((count, settings, quantize_seconds(expected), quantize_seconds(on_device),
                         same_bytes(expected, on_device)))
            if not rows[-1][-1]:
                print(f"{count} splats, {settings}: {describe_difference(on_device, expected)}")
        print(f"{count} splats, parts on {device}: "
              + ", ".join(f"{k} {v:.3f}s" for k, v in parts(splats, device).items()))

    print("\n| splats | rate_weight | position_bits | numpy (host) s | torch on device s | speed-up | same bytes |")
    print("|--:|--:|--:|--:|--:|--:|:-:|")
    for count, settings, cpu_s, dev_s, same in rows:
        print(f"| {count:,} | {settings['rate_weight']} | {settings['position_bits']} | {cpu_s:.3f} | {dev_s:.3f} "
              f"| {cpu_s / dev_s:.1f}x | {'yes' if same else 'NO'} |")
    if not identical or not all(row[-1] for row in rows):
        sys.exit("bytes differ between the host and device paths (see the lines above)")


if __name__ == "__main__":
    main()
