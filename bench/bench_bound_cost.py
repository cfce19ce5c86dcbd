"""What the per-splat error bound costs in bytes, per preset and scene (issue 15; bench/SIZE.md "Per-splat error
bound").

The bound changes only the scale and colour codebooks (``scales.webp``, ``sh0.webp``) and, below 12 position
bits, the position grid of faint splats (``means_*.webp``); the SH palette is untouched. So every preset is
encoded without its palette, with the bound and without (``--no-error-bound``), and the textures that differ
are WebP-compressed with the preset's efforts. The cost is given against those textures' bytes and, where
bench_size_quality.py's bound sweep has measured the whole bundle (bench/out/size_quality.json), against it.
Also prints the largest log-scale growth and the splats beyond the bounds, measured on the decoded textures.

    .venv/bin/python bench/bench_bound_cost.py [--scenes guitar flowers_3_0 tile-30k-sh3 gen-30k-sh3 wide-30k-sh3]
Runs on CPU (no k-means: a few seconds per scene and preset).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_size_quality import OUT, SCENES, scene_splats  # noqa: E402

from sogs_compressor import presets  # noqa: E402
from sogs_compressor.options import CompressOptions  # noqa: E402
from sogs_compressor.pipeline import order_splats  # noqa: E402
from sogs_compressor.sog.encode import encode_sog  # noqa: E402
from sogs_compressor.sog.webp import WebpEncoder  # noqa: E402
from sogs_compressor.verify.decode import decode_on_device  # noqa: E402
from sogs_compressor.verify.metrics import attribute_errors, beyond_counts  # noqa: E402

CPU = torch.device("cpu")


def measure(splats, preset: str, bound: bool) -> dict:
    """Bytes of every texture but the SH palette's, and the worst cases, for ``preset`` with / without the bound."""
    requested = CompressOptions(preset=preset, device="cpu")
    options = presets.resolve(requested)
    settings = presets.encoder_settings(options, splats.count) | {"palette_size": 0, "error_bound": bound}
    encoder = WebpEncoder(presets.webp_effort(requested))
    encoded = encode_sog(splats, iterations=1, seed=options.seed, device=CPU, on_image=encoder.submit, **settings)
    webps = encoder.results()
    errors = attribute_errors(splats, decode_on_device(encoded.meta, encoded.images, CPU).to_splats())
    return {"bytes": {name: len(data) for name, data in webps.items()},
            "log_scale_growth_max": errors["log_scale_growth_max"], "f_dc_abs_max": errors["f_dc_abs_max"],
            "beyond": beyond_counts(errors)}


def whole_bundle(scene: str, preset: str) -> int | None:
    """The whole bundle's bytes with the bound, from bench_size_quality.py --sweep bound, when it has run."""
    path = OUT / "size_quality.json"
    rows = json.loads(path.read_text()).get("bound", {}).get(scene, []) if path.exists() else []
    return next((row["bytes"] for row in rows if row["variant"] == preset), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=list(SCENES))
    parser.add_argument("--work", type=Path, default=OUT / "scenes")
    args = parser.parse_args()
    print("| scene | preset | textures w/o palette, bound off | bound on | cost | cost x whole bundle | max log-scale "
          "growth off / on | max f_dc error off / on | splats beyond, off / on |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    results = {}
    for scene in args.scenes:
        splats, _ = scene_splats(scene, args.work)
        splats = splats.take(order_splats(splats, "morton", CPU, 0))
        for preset in ("fast", "balanced", "max"):
            off, on = measure(splats, preset, False), measure(splats, preset, True)
            off_bytes, on_bytes = sum(off["bytes"].values()), sum(on["bytes"].values())
            whole = whole_bundle(scene, preset)
            whole_text = f"{(on_bytes - off_bytes) / whole:+.2%}" if whole else "-"
            print(f"| {scene} | {preset} | {off_bytes:,} | {on_bytes:,} | {(on_bytes - off_bytes) / off_bytes:+.2%} | "
                  f"{whole_text} | {off['log_scale_growth_max']:.3f} / {on['log_scale_growth_max']:.3f} | "
                  f"{off['f_dc_abs_max']:.3f} / {on['f_dc_abs_max']:.3f} | {_beyond(off)} / {_beyond(on)} |",
                  flush=True)
            results[f"{scene}/{preset}"] = {"off": off, "on": on, "whole_bundle_on": whole}
    (OUT / "bound_cost.json").write_text(json.dumps(results, indent=1))
    return 0


def _beyond(row: dict) -> str:
    return ", ".join(f"{n} {name}" for name, n in row["beyond"].items()) or "0"


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
