# syntax=docker/dockerfile:1
# Production image (GPU): SOG compression as a SageMaker Processing job or `docker run --gpus all`.
#
#   docker build --platform linux/amd64 -t sogs-compressor .
#   docker run --rm --gpus all -v "$PWD/in:/data/in:ro" -v "$PWD/out:/data/out" sogs-compressor \
#       --input /data/in --output /data/out
#
# Base: CUDA 12.6 user-space only (no driver), pinned by tag. The "base" flavour is enough: the torch cu126
# wheels bring cuBLAS/cuDNN as pip packages, and the image keeps /usr/local/cuda/compat (forward-compat
# libraries, libcuda 560.35.05; docker/entrypoint.sh enables them only for a host driver older than that, on
# data-centre GPUs, the only ones NVIDIA documents forward compatibility for).
# Driver needed: >= 560.35 natively, >= 525 by CUDA 12 minor-version compatibility, R470 only through the compat
# libraries (README "The CUDA image: driver and size"). torch 2.13.0 publishes cu126 (legacy, sm_50..sm_90: T4,
# A10G, L4, L40S, V100, A100, H100) and cu130 (PyPI's build, sm_75+, driver >= 580); there is no cu128 for 2.13.
# tests/test_resolve.py resolves torch from TORCH_INDEX_URL for this image's Python 3.12 and glibc 2.39.
ARG CUDA_BASE=nvidia/cuda:12.6.3-base-ubuntu24.04

FROM ${CUDA_BASE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch in its own layer (largest, changes least), from the CUDA 12.6 wheel index only.
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
COPY requirements.txt /src/requirements.txt
RUN pip install --no-cache-dir -r /src/requirements.txt
COPY pyproject.toml README.md LICENSE /src/
COPY sogs_compressor /src/sogs_compressor
RUN pip install --no-cache-dir --no-deps /src

FROM ${CUDA_BASE}
LABEL org.opencontainers.image.title="sogs-compressor" \
      org.opencontainers.image.description="3D Gaussian Splatting PLY -> PlayCanvas SOG v2 (GPU)"
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
COPY compress_model.py test_sogs_local.py /app/
COPY --chmod=0755 docker/entrypoint.sh /app/entrypoint.sh
# Compiled Triton kernels (a few seconds per kernel on a fresh machine) go to one known folder: every GPU worker
# of a job shares it, and `docker run -v sogs-triton:/var/cache/sogs/triton` keeps it from one run to the next.
RUN mkdir -p /var/cache/sogs/triton && chmod 1777 /var/cache/sogs/triton
# SOGS_DEVICE=cuda: a job that lands on a machine without a usable GPU fails at once (exit 20, ExitMessage)
# instead of silently running for hours on the CPU. Override with SOGS_DEVICE=cpu or --device cpu.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SOGS_DEVICE=cuda \
    TRITON_CACHE_DIR=/var/cache/sogs/triton \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
# Runs as root on purpose: SageMaker Processing mounts (/opt/ml/processing/*) are root-owned.
ENTRYPOINT ["/app/entrypoint.sh"]
