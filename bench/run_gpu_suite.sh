#!/usr/bin/env bash
# Everything the GPU machine checks and measures, in one call (device tool; see bench/RESULTS.md):
#   CUDA test paths, the encoder benchmark (ours + splat-transform's WebGPU path), the renderer benchmark and
#   the renderer cross-check. Logs go to $OUT (or ./bench/out/gpu-suite). Carry: .whl .bench-data .peer-gpu
# Usage: bash bench/run_gpu_suite.sh [tests|encode|cold|render|size|profile|all] [scenes...]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-bench/out/gpu-suite}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 BENCH_OUT=/tmp/sogs-bench-out SOGS_REAL_DATA="$PWD/.bench-data"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
what=${1:-all}
shift || true
scenes=("$@")
read -r -a presets <<<"${PRESETS:-balanced fast}"
[ ${#scenes[@]} -gt 0 ] || scenes=(gen-1m-sh2 gen-4m-sh2 gen-4m-sh3 gen-10m-sh3)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)' | tee -a "$OUT/gpu.txt"

if [ "$what" = tests ] || [ "$what" = all ]; then
    timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_assign_triton.py tests/test_kmeans.py tests/test_pipeline.py \
        tests/test_palette.py tests/test_presets.py \
        tests/test_morton.py tests/test_render.py tests/test_reorder.py \
        tests/test_attributes_torch.py tests/test_splats.py 2>&1 | tail -5 | tee "$OUT/tests.txt"
fi
if [ "$what" = encode ] || [ "$what" = all ]; then
    if [ -f .peer-gpu/env.sh ]; then
        # shellcheck disable=SC1091
        source .peer-gpu/env.sh >"$OUT/peer-env.txt" 2>&1 || true
    fi
    timeout 480 python3 bench/bench_gpu.py --verify --presets "${presets[@]}" --scenes "${scenes[@]}" \
        --peer gen-1m-sh2 gen-4m-sh2 gen-4m-sh3 2>&1 | tee "$OUT/encode.txt" | tail -30
    cp "$BENCH_OUT/gpu.json" "$OUT/" 2>/dev/null || true
fi
if [ "$what" = cold ] || [ "$what" = all ]; then
    # first scene of a fresh process with an empty Triton cache (scenes made by the encode step or here)
    python3 -c 'import sys; sys.path.insert(0, "bench"); from pathlib import Path; from bench_codec import prepare_scenes; prepare_scenes(["gen-1m-sh2", "gen-4m-sh3"], Path("/tmp/sogs-bench"))'
    for scene in gen-1m-sh2 gen-4m-sh3; do
        timeout 120 python3 bench/bench_cold_start.py "/tmp/sogs-bench/$scene.ply" --runs 3 2>&1 | tee -a "$OUT/cold.txt"
    done
fi
if [ "$what" = render ] || [ "$what" = all ]; then
    timeout 120 python3 bench/bench_render.py --device cuda 2>&1 | tee "$OUT/render.txt" | tail -8
    timeout 120 python3 bench/crosscheck_render.py .bench-data/flowers_3_0/meta.json --device cuda --size 512 --views 4 \
        2>&1 | tee "$OUT/crosscheck.txt" | tail -8
fi
if [ "$what" = size ] || [ "$what" = all ]; then
    # rendered quality and bytes at scale against splat-transform's WebGPU output (bench/SIZE.md)
    if [ -f .peer-gpu/env.sh ] && [ -z "${ST:-}" ]; then
        # shellcheck disable=SC1091
        source .peer-gpu/env.sh >"$OUT/peer-env.txt" 2>&1 || true
    fi
    [ $# -gt 0 ] || scenes=(gen-1m-sh3 tile-1m-sh3)
    timeout 420 python3 bench/bench_size_quality.py --device cuda --peer --sweep "${SWEEP:-presets}" \
        --scenes "${scenes[@]}" --work /tmp/sogs-size 2>&1 | tee "$OUT/size.txt" | grep -v '^  '
    cp bench/out/size_quality.json "$OUT/" 2>/dev/null || true
fi
if [ "$what" = profile ]; then
    # where the default path's time goes, piece by piece (bench/profile_stages.py), and the WebP effort sweep
    [ $# -gt 0 ] || scenes=(tile-guitar-4m-sh2 tile-flowers-4m-sh3)
    timeout 540 python3 bench/profile_stages.py --scenes "${scenes[@]}" --webp-sweep --json "$OUT/profile.json" \
        2>&1 | tail -c 3000 | tee "$OUT/profile.txt"
fi
