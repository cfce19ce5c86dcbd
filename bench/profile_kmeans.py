"""Where k-means time goes on a GPU: init, each assignment (Triton/torch), each update, sampled variant.

    python bench/profile_kmeans.py --n 1000000 4000000 --dim 24 --k 65536
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sogs_compressor.quantize import kmeans as km  # noqa: E402
from sogs_compressor.quantize.assign import nearest_centroid  # noqa: E402


def timed(label, fn, device):
    torch.cuda.synchronize(device)
    t = time.perf_counter()
    out = fn()
    torch.cuda.synchronize(device)
    print(f"  {label:<32} {time.perf_counter() - t:8.3f} s", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--dim", type=int, nargs="+", default=[24, 45])
    parser.add_argument("--k", type=int, default=65536)
    args = parser.parse_args()
    device = torch.device("cuda")
    rng = np.random.default_rng(0)
    for dim in args.dim:
        for n in args.n:
            print(f"N={n} D={dim} K={args.k}", flush=True)
            data = (rng.standard_normal((n, dim), dtype=np.float32) * 0.1)
            data[:, :3] += rng.standard_normal((n, 1), dtype=np.float32)  # some structure
            timed("exact_palette check", lambda data=data: km.exact_palette(data, args.k), device)
            x = timed("to device", lambda data=data: torch.from_numpy(data).to(device), device)
            gen = torch.Generator().manual_seed(0)
            init = timed("init rows", lambda x=x, gen=gen, n=n: x[km._random_rows(n, args.k, gen).to(device)], device)
            labels = timed("assign 1 (compile?)", lambda x=x, init=init: nearest_centroid(x, init), device)
            labels = timed("assign 2", lambda x=x, init=init: nearest_centroid(x, init), device)
            timed("segment_sums", lambda x=x, labels=labels: km.segment_sums(x, labels, args.k), device)
            new, reseeded = timed("update_centroids", lambda x=x, labels=labels, init=init:
                                  km.update_centroids(x, labels, init), device)
            print(f"  reseeded {reseeded}")
            timed("lloyd 10 iterations", lambda x=x, init=init: km.lloyd(x, init, 10), device)
            timed("kmeans() auto, 10 it", lambda data=data: km.kmeans(data, args.k, 10, 0, device), device)
            del x, init, labels
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
