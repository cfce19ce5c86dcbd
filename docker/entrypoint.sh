#!/usr/bin/env bash
# Container entrypoint of the SOG compression image (SageMaker Processing or `docker run`).
#
# Before handing over to Python it:
#   1. puts NVIDIA's CUDA forward-compat libraries on LD_LIBRARY_PATH, but only when the host driver is older
#      than the CUDA user-space in the image (on a newer driver they would break CUDA) and the GPUs are
#      data-centre parts (the only ones NVIDIA documents forward compatibility for);
#   2. fails fast, with an ExitMessage, when a GPU is requested (SOGS_DEVICE / --device cuda*) but no NVIDIA
#      driver is visible (a CPU instance type such as ml.c6i.4xlarge, or `docker run` without `--gpus all`);
#   3. checks that /opt/ml/output and every output path can be written (a non-root user often cannot);
# then replaces itself with Python (`exec`), so SIGINT/SIGTERM reach the job directly.
#
# Environment (defaults in brackets):
#   SOGS_OPT_ML_ROOT [/opt/ml]   SOGS_DEVICE [auto]   SOGS_APP_DIR [/app]   SOGS_PYTHON [python]
#   SOGS_CUDA_COMPAT_DIR [/usr/local/cuda/compat]   SOGS_NVIDIA_VERSION_FILE [/proc/driver/nvidia/version]
set -euo pipefail

OPT_ML_ROOT="${SOGS_OPT_ML_ROOT:-/opt/ml}"
APP_DIR="${SOGS_APP_DIR:-/app}"
PYTHON_BIN="${SOGS_PYTHON:-python}"
COMPAT_DIR="${SOGS_CUDA_COMPAT_DIR:-/usr/local/cuda/compat}"
NVIDIA_VERSION_FILE="${SOGS_NVIDIA_VERSION_FILE:-/proc/driver/nvidia/version}"

log() {
    printf '%s entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

current_host() {
    local config="$OPT_ML_ROOT/config/resourceconfig.json" host=""
    if [ -r "$config" ]; then
        host=$(sed -n 's/.*"current_host"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$config" | head -n 1)
    fi
    printf '%s' "${host:-${HOSTNAME:-localhost}}"
}

# fail CODE MESSAGE: one line on stderr and in <opt-ml>/output/message (SageMaker's ExitMessage), then exit.
fail() {
    local code=$1 line
    shift
    # One line, at most 300 bytes, cut on a UTF-8 boundary (SageMaker fails a job whose message is not UTF-8).
    line=$(printf '%s: %s' "$(current_host)" "$*" | tr '\n' ' ' | LC_ALL=C cut -b 1-300 | iconv -f UTF-8 -t UTF-8 -c 2>/dev/null) || true
    log "error: $*"
    if mkdir -p "$OPT_ML_ROOT/output" 2>/dev/null; then
        printf '%s\n' "$line" >"$OPT_ML_ROOT/output/message" 2>/dev/null || true
    fi
    exit "$code"
}

# version_lt A B: true when dotted version A sorts strictly before B.
version_lt() {
    [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$1" ]
}

host_driver_version() {
    local version=""
    if command -v nvidia-smi >/dev/null 2>&1; then
        version=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '[:space:]') || version=""
    fi
    # nvidia-smi prints its own failures ("NVIDIA-SMI has failed ...") on stdout: keep only a version number.
    [[ "$version" =~ ^[0-9]+(\.[0-9]+)*$ ]] || version=""
    if [ -z "$version" ] && [ -r "$NVIDIA_VERSION_FILE" ]; then
        version=$(sed -n 's/^NVRM.*Kernel Module[^0-9]*\([0-9][0-9.]*\).*$/\1/p' "$NVIDIA_VERSION_FILE" | head -n 1)
    fi
    printf '%s' "$version"
}

# The driver version the compat libcuda stands for, from its file name (libcuda.so.560.35.05 -> 560.35.05).
compat_driver_version() {
    local lib
    for lib in "$COMPAT_DIR"/libcuda.so.*.*; do
        [ -e "$lib" ] || continue
        printf '%s' "${lib##*/libcuda.so.}"
        return 0
    done
}

# The GPU names nvidia-smi reports, one per line (empty when nvidia-smi is missing or fails).
gpu_names() {
    if command -v nvidia-smi >/dev/null 2>&1; then
        nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || true
    fi
}

# NVIDIA documents forward compatibility for data-centre GPUs only (plus select NGC-ready RTX SKUs and Jetson):
# on GeForce, TITAN, Quadro and RTX workstation cards the compat libcuda fails with
# CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE (804). Every SageMaker GPU (T4, A10G, L4, L40S, A100, H100, RTX PRO
# 6000 Server Edition) is a data-centre part. Prints the first GPU that is not.
non_datacenter_gpu() {
    gpu_names | grep -Ei 'geforce|titan|quadro|rtx' | grep -Eiv 'server edition' | head -n 1 || true
}

setup_cuda_compat() {
    local driver=$1 compat desktop
    compat=$(compat_driver_version)
    if [ -z "$driver" ] || [ -z "$compat" ]; then
        return 0
    fi
    desktop=$(non_datacenter_gpu)
    if [ -n "$desktop" ] && version_lt "$driver" "$compat"; then
        log "host driver $driver is older than the image's CUDA ($compat), but forward compatibility does not cover $desktop: not using $COMPAT_DIR (CUDA 12 still runs on drivers >= 525 by minor-version compatibility)"
    elif version_lt "$driver" "$compat"; then
        export LD_LIBRARY_PATH="$COMPAT_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        log "host driver $driver is older than the image's CUDA ($compat): using forward-compat libraries in $COMPAT_DIR"
    else
        log "host driver $driver supports the image's CUDA ($compat): forward-compat libraries not needed"
    fi
}

# The device asked for: the last --device on the command line, else SOGS_DEVICE, else auto.
requested_device() {
    local device="${SOGS_DEVICE:-auto}"
    while [ $# -gt 0 ]; do
        case "$1" in
            --device) [ $# -ge 2 ] && device=$2 && shift ;;
            --device=*) device=${1#--device=} ;;
        esac
        shift
    done
    printf '%s' "$device"
}

# Local output paths to probe: /opt/ml/output, the job's --output (unless s3://), and the LocalPath of
# every ProcessingOutput in processingjobconfig.json.
output_paths() {
    printf '%s\n' "$OPT_ML_ROOT/output"
    local output=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --output) [ $# -ge 2 ] && output=$2 && shift ;;
            --output=*) output=${1#--output=} ;;
        esac
        shift
    done
    case "$output" in
        "" | s3://* | S3://*) ;;
        *) printf '%s\n' "$output" ;;
    esac
    local config="$OPT_ML_ROOT/config/processingjobconfig.json"
    if [ -r "$config" ]; then
        # Output LocalPaths are absolute /opt/ml/... paths; map them under a relocated root.
        python3 - "$config" "$OPT_ML_ROOT" <<'PY' || true
import json, sys
config, root = sys.argv[1], sys.argv[2].rstrip("/")
try:
    outputs = json.load(open(config, encoding="utf-8")).get("ProcessingOutputConfig", {}).get("Outputs", [])
except (OSError, ValueError, AttributeError):
    outputs = []
for output in outputs:
    path = (output.get("S3Output") or {}).get("LocalPath")
    if path:
        print(root + path[len("/opt/ml"):] if path.startswith("/opt/ml/") else path)
PY
    fi
}

probe_writable() {
    local dir=$1 probe
    mkdir -p "$dir" 2>/dev/null || return 1
    probe="$dir/.sogs-write-probe-$$"
    : >"$probe" 2>/dev/null || return 1
    rm -f "$probe"
}

main() {
    local driver device path
    driver=$(host_driver_version)
    setup_cuda_compat "$driver"

    device=$(requested_device "$@")
    case "$device" in
        cuda*)
            if [ -z "$driver" ]; then
                fail 20 "device $device requested but no NVIDIA driver is visible in the container: use a GPU instance type (ml.g5/g6/g4dn/p5; ml.c6i.4xlarge has no GPU), run docker with --gpus all, or set SOGS_DEVICE=cpu"
            fi
            log "NVIDIA driver $driver, device $device"
            ;;
    esac

    while IFS= read -r path; do
        [ -n "$path" ] || continue
        if ! probe_writable "$path"; then
            fail 40 "output path $path is not writable by uid $(id -u): run the container as root (SageMaker mounts are root-owned) or fix the mount's permissions"
        fi
    done < <(output_paths "$@")

    exec "$PYTHON_BIN" "$APP_DIR/compress_model.py" "$@"
}

main "$@"
