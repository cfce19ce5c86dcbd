"""Peak tensor memory of ``lod.decimate`` by scene size, measured on the CPU (no GPU needed).

Every tensor storage that a torch operation creates during the decimation is counted from its creation until it is
freed (a ``TorchDispatchMode`` sees each operation's outputs; a finalizer on the storage sees it go), and the peak
of the live total is reported. This is what the device would hold, less the caching allocator's slack, with one
difference: on the CPU the round's upload of the splats (``.to(device)`` of float32 columns, 236 bytes per splat
at SH degree 3) is the host array itself, not a copy, so it is added as ``upload_bytes`` per round.
Fitting peak = a + b x N over the sizes gives the fixed part (chunk temporaries) and the bytes per splat.

    python bench/bench_decimate_memory.py --sizes 100000 400000 1000000       # guitar tiled, SH 3, cut to 50%
"""

from __future__ import annotations

import argparse
import json
import weakref
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sogs_compressor.lod.decimate import decimate
from sogs_compressor.read import read_scene
from sogs_compressor.sample import tile_scene
from sogs_compressor.splats import COLUMNS

GUITAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "guitar.compressed.ply"


class LiveTensorBytes(TorchDispatchMode):
    """Bytes of tensor storages alive now, and the most ever alive, among those created inside the mode."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _freed(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in _tensors(out):
            storage = tensor.untyped_storage()
            key = id(storage)
            if key in self._seen or storage.nbytes() == 0:
                continue
            self._seen.add(key)
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._freed, key, storage.nbytes())
        return out


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", default=str(GUITAR))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 400_000])
    parser.add_argument("--fraction", type=float, default=0.5, help="splats kept (default 0.5)")
    parser.add_argument("--sh-degree", type=int, default=3)
    args = parser.parse_args()

    source = read_scene(args.scene).splats
    rows = []
    for size in args.sizes:
        splats = tile_scene(source, size, seed=1, sh_degree=args.sh_degree)
        upload = sum(getattr(splats, name).nbytes for name in COLUMNS)
        with LiveTensorBytes() as counter:
            decimate(splats, max(1, int(size * args.fraction)), device="cpu", seed=0)
        rows.append({"splats": size, "peak_tensor_bytes": counter.peak, "upload_bytes": upload,
                     "peak_with_upload_gib": round((counter.peak + upload) / 2**30, 3),
                     "bytes_per_splat": round((counter.peak + upload) / size, 1)})
        print(json.dumps(rows[-1]), flush=True)
    if len(rows) >= 2:
        n = np.array([r["splats"] for r in rows], dtype=np.float64)
        peak = np.array([r["peak_tensor_bytes"] + r["upload_bytes"] for r in rows], dtype=np.float64)
        slope, fixed = np.polyfit(n, peak, 1)
        print(json.dumps({"fit": "peak = fixed + per_splat x N", "fixed_mib": round(fixed / 2**20, 1),
                          "per_splat_bytes": round(slope, 1),
                          "predicted_10M_gib": round((fixed + slope * 10_000_000) / 2**30, 2)}))


if __name__ == "__main__":
    main()
