"""Invariants of both Dockerfiles and .dockerignore, and the behaviour of docker/entrypoint.sh.

There is no Docker engine on CI, so the Dockerfiles are parsed (hadolint runs in scripts/lint.sh) and the
entrypoint runs under bash with stub ``nvidia-smi`` / python executables and a relocated /opt/ml.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
IMAGES = {"Dockerfile": ("cu126", "cuda"), "Dockerfile.minimal": ("cpu", "cpu")}


# --- a small Dockerfile parser -------------------------------------------------------------------------------

def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result, pending = [], ""
    for raw in (REPO / dockerfile).read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, rest = full.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def stages(dockerfile: str) -> list[list[tuple[str, str]]]:
    """Instructions grouped by stage; element 0 holds the global ARGs before the first FROM."""
    groups: list[list[tuple[str, str]]] = [[]]
    for instruction in instructions(dockerfile):
        if instruction[0] == "FROM":
            groups.append([])
        groups[-1].append(instruction)
    return groups


def arg_defaults(items: list[tuple[str, str]]) -> dict[str, str]:
    return dict(rest.split("=", 1) for kind, rest in items if kind == "ARG" and "=" in rest)


def env_values(items: list[tuple[str, str]]) -> dict[str, str]:
    values = {}
    for kind, rest in items:
        if kind == "ENV":
            values.update(re.findall(r"(\w+)=(\S+)", rest))
    return values


def expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), m.group(0)), text)


# --- Dockerfile invariants -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dockerfile", IMAGES)
def test_base_images_are_pinned(dockerfile):
    groups = stages(dockerfile)
    global_args = arg_defaults(groups[0])
    names = set()
    for group in groups[1:]:
        image, *alias = group[0][1].split()
        image = expand(image, global_args)
        if image not in names:
            assert "@sha256:" in image or re.search(r":[^:/]*\d+\.\d+[^:/]*$", image), f"unpinned base {image}"
            assert not image.endswith(":latest")
        if alias:
            names.add(alias[-1])


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_exec_form_entrypoint_in_final_stage(dockerfile):
    final = stages(dockerfile)[-1]
    entrypoints = [rest for kind, rest in final if kind == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    assert json.loads(entrypoints[0]) == ["/app/entrypoint.sh"]  # exec form: signals reach the process
    copies = " ".join(rest for kind, rest in final if kind == "COPY")
    assert "docker/entrypoint.sh /app/entrypoint.sh" in copies
    assert re.search(r"compress_model\.py .*/app/", copies)
    assert not any(kind == "CMD" for kind, _ in final)
    assert not any("/opt/ml" in rest for _, rest in final), "/opt/ml is reserved by SageMaker"


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_environment_of_final_stage(dockerfile):
    env = env_values(stages(dockerfile)[-1])
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["SOGS_DEVICE"] == IMAGES[dockerfile][1]
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_production_image_runs_as_root():
    # SageMaker Processing mounts are root-owned; a USER line would make outputs unwritable there.
    assert not any(kind == "USER" for kind, _ in instructions("Dockerfile"))


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_torch_layer_then_requirements_then_code(dockerfile):
    build = stages(dockerfile)[1]
    args = arg_defaults(build)
    assert args["TORCH_INDEX_URL"] == f"https://download.pytorch.org/whl/{IMAGES[dockerfile][0]}"
    runs = [(i, rest) for i, (kind, rest) in enumerate(build) if kind == "RUN"]
    torch_runs = [i for i, rest in runs if "torch==" in rest]
    assert len(torch_runs) == 1
    torch_run = build[torch_runs[0]][1]
    assert '--index-url "${TORCH_INDEX_URL}"' in torch_run
    req_copy = next(i for i, (kind, rest) in enumerate(build) if kind == "COPY" and "requirements.txt" in rest)
    req_install = next(i for i, rest in runs if "-r /src/requirements.txt" in rest)
    code_copy = next(i for i, (kind, rest) in enumerate(build) if kind == "COPY" and "sogs_compressor" in rest)
    assert torch_runs[0] < req_copy < req_install < code_copy
    text = (REPO / dockerfile).read_text()
    assert "--extra-index-url" not in text  # mixing indexes lets pip pick a CUDA torch from PyPI


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_no_caches_or_build_tools_left(dockerfile):
    for kind, rest in instructions(dockerfile):
        if kind != "RUN":
            continue
        if "pip install" in rest:
            assert "--no-cache-dir" in rest
        if "apt-get install" in rest:
            assert "--no-install-recommends" in rest and "rm -rf /var/lib/apt/lists/*" in rest
            assert not re.search(r"\b(gcc|g\+\+|build-essential|make|git)\b", rest)


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_no_secrets(dockerfile):
    text = (REPO / dockerfile).read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    for kind, rest in instructions(dockerfile):
        if kind in ("ENV", "ARG"):
            names = re.findall(r"(\w+)=", rest) or [rest.split()[0]]
            for name in names:
                assert not re.search(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL", name, re.I), name
        if kind in ("COPY", "ADD"):
            assert ".aws" not in rest and "credentials" not in rest
        assert kind != "ADD", "use COPY (ADD fetches URLs and unpacks archives)"


def dockerignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        parts = path.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        if pattern.startswith("**/"):
            prefixes += ["/".join(parts[n:m]) for n in range(len(parts)) for m in range(n + 1, len(parts) + 1)]
        if any(fnmatch.fnmatchcase(prefix, c) for prefix in prefixes for c in candidates):
            ignored = not negate
    return ignored


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("dockerfile", IMAGES)
def test_copied_files_exist_and_are_not_dockerignored(dockerfile):
    patterns = dockerignore_patterns()
    for kind, rest in instructions(dockerfile):
        if kind != "COPY" or "--from=" in rest:
            continue
        *sources, _ = [word for word in rest.split() if not word.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"{dockerfile} copies {source}, which is missing"
            assert not dockerignored(source, patterns), f"{source} is excluded by .dockerignore"


def test_dockerignore_keeps_out_repo_state_and_data():
    patterns = dockerignore_patterns()
    for path in (".git", ".venv/bin/python", "tests/test_x.py", "sogs_compressor/__pycache__/a.pyc",
                 "scene.ply", "out/a/b.sog", ".peer/node_modules/x", ".env", "bench/RESULTS.md"):
        assert dockerignored(path, patterns), path
    for path in ("sogs_compressor/cli.py", "requirements.txt", "pyproject.toml", "docker/entrypoint.sh"):
        assert not dockerignored(path, patterns), path


# --- docker/entrypoint.sh ------------------------------------------------------------------------------------

FAKE_PYTHON = """#!/usr/bin/env python3
import json, os, sys
print(json.dumps({"argv": sys.argv[1:], "ld": os.environ.get("LD_LIBRARY_PATH", "")}))
"""


@pytest.fixture
def sandbox(tmp_path):
    """A relocated /opt/ml, a fake CUDA compat dir (libcuda for driver 560.35.05) and a bin dir for stubs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_python = bin_dir / "fake-python"
    fake_python.write_text(FAKE_PYTHON)
    fake_python.chmod(0o755)
    compat = tmp_path / "compat"
    compat.mkdir()
    (compat / "libcuda.so.560.35.05").write_bytes(b"")
    (compat / "libcuda.so.1").symlink_to("libcuda.so.560.35.05")
    return tmp_path


def add_nvidia_smi(sandbox: Path, version: str, *names: str) -> None:
    """A stub nvidia-smi answering the driver version, and the GPU names when NAMES are given."""
    stub = sandbox / "bin" / "nvidia-smi"
    listed = "\n".join(names)
    stub.write_text(f"#!/bin/sh\ncase \"$*\" in *name*) [ -n '{listed}' ] && printf '%s\\n' '{listed}' ;;\n"
                    f"*) echo '{version}' ;;\nesac\n")
    stub.chmod(0o755)


def run_entrypoint(sandbox: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    python_dir = str(Path(shutil.which("python3")).parent)
    base = {
        "PATH": os.pathsep.join([str(sandbox / "bin"), python_dir, "/usr/bin", "/bin"]),
        "SOGS_OPT_ML_ROOT": str(sandbox / "opt_ml"),
        "SOGS_APP_DIR": "/app",
        "SOGS_PYTHON": str(sandbox / "bin" / "fake-python"),
        "SOGS_CUDA_COMPAT_DIR": str(sandbox / "compat"),
        "SOGS_NVIDIA_VERSION_FILE": str(sandbox / "no-such-file"),
        "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64",
        "HOSTNAME": "algo-7",
    }
    return subprocess.run(["bash", str(ENTRYPOINT), *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=30)


def handed_over(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def message(sandbox: Path) -> bytes:
    return (sandbox / "opt_ml" / "output" / "message").read_bytes()


def test_old_driver_gets_forward_compat_and_args_pass_through(sandbox):
    add_nvidia_smi(sandbox, "470.82.01")
    args = ["--input", "/data/my scenes", "--output", str(sandbox / "out"), "--note", "a;b $x"]
    seen = handed_over(run_entrypoint(sandbox, *args, SOGS_DEVICE="cuda"))
    assert seen["argv"] == ["/app/compress_model.py", *args]
    assert seen["ld"] == f"{sandbox / 'compat'}:/usr/local/nvidia/lib64"
    assert (sandbox / "out").is_dir() and not list((sandbox / "out").iterdir())  # probed, probe removed


@pytest.mark.parametrize("gpus", [("Tesla T4",), ("NVIDIA A10G",), ("NVIDIA L4",), ("NVIDIA H100 80GB HBM3",),
                                  ("NVIDIA RTX PRO 6000 Blackwell Server Edition",)])
def test_old_driver_on_datacenter_gpus_gets_forward_compat(sandbox, gpus):
    add_nvidia_smi(sandbox, "535.183.01", *gpus)
    result = run_entrypoint(sandbox, SOGS_DEVICE="cuda")
    assert handed_over(result)["ld"] == f"{sandbox / 'compat'}:/usr/local/nvidia/lib64"
    assert "using forward-compat libraries" in result.stderr


@pytest.mark.parametrize("gpus", [("NVIDIA GeForce RTX 4090",), ("NVIDIA RTX A6000",), ("Quadro RTX 8000",),
                                  ("NVIDIA A100-SXM4-40GB", "NVIDIA GeForce RTX 3090")])
def test_old_driver_on_desktop_gpus_gets_no_forward_compat(sandbox, gpus):
    # NVIDIA documents forward compatibility for data-centre GPUs only; elsewhere the compat libcuda fails (804).
    add_nvidia_smi(sandbox, "535.183.01", *gpus)
    result = run_entrypoint(sandbox, SOGS_DEVICE="cuda")
    assert handed_over(result)["ld"] == "/usr/local/nvidia/lib64"
    assert "forward compatibility does not cover" in result.stderr


def test_new_driver_keeps_library_path(sandbox):
    add_nvidia_smi(sandbox, "570.86.15")
    seen = handed_over(run_entrypoint(sandbox, "--output", str(sandbox / "out"), SOGS_DEVICE="cuda"))
    assert seen["ld"] == "/usr/local/nvidia/lib64"


def test_driver_version_read_from_proc_file_without_nvidia_smi(sandbox):
    proc = sandbox / "nvidia-version"
    proc.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024\n")
    seen = handed_over(run_entrypoint(sandbox, SOGS_DEVICE="cuda", SOGS_NVIDIA_VERSION_FILE=str(proc)))
    assert seen["ld"].startswith(str(sandbox / "compat") + ":")


def test_gpu_requested_without_driver_fails_fast_with_exit_message(sandbox):
    result = run_entrypoint(sandbox, "--output", str(sandbox / "out"), SOGS_DEVICE="cuda")
    assert result.returncode == 20
    assert result.stdout == ""  # Python never started
    text = message(sandbox).decode("utf-8")
    assert text.count("\n") == 1 and text.startswith("algo-7: ")
    assert "no NVIDIA driver" in text and "ml.c6i.4xlarge has no GPU" in text


def test_failing_nvidia_smi_counts_as_no_driver(sandbox):
    stub = sandbox / "bin" / "nvidia-smi"
    stub.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'\n"
                    "exit 9\n")
    stub.chmod(0o755)
    assert run_entrypoint(sandbox, SOGS_DEVICE="cuda").returncode == 20
    seen = handed_over(run_entrypoint(sandbox, SOGS_DEVICE="auto"))
    assert seen["ld"] == "/usr/local/nvidia/lib64"


def test_device_flag_overrides_environment(sandbox):
    seen = handed_over(run_entrypoint(sandbox, "--device", "cpu", SOGS_DEVICE="cuda"))
    assert seen["argv"][-2:] == ["--device", "cpu"]
    result = run_entrypoint(sandbox, "--device=cuda:0", SOGS_DEVICE="cpu")
    assert result.returncode == 20


def test_unwritable_output_fails_with_exit_message(sandbox):
    blocker = sandbox / "a-file"
    blocker.write_text("not a directory")
    result = run_entrypoint(sandbox, "--output", str(blocker / "out"), SOGS_DEVICE="cpu")
    assert result.returncode == 40
    assert result.stdout == ""
    text = message(sandbox).decode("utf-8")
    assert f"output path {blocker / 'out'} is not writable" in text


def test_processing_job_output_paths_are_probed(sandbox):
    config = sandbox / "opt_ml" / "config"
    config.mkdir(parents=True)
    outputs = [{"OutputName": "sog", "S3Output": {"S3Uri": "s3://b/sog/", "LocalPath": "/opt/ml/processing/output/sog",
                                                   "S3UploadMode": "EndOfJob"}}]
    (config / "processingjobconfig.json").write_text(json.dumps({"ProcessingOutputConfig": {"Outputs": outputs}}))
    (config / "resourceconfig.json").write_text('{"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}')
    handed_over(run_entrypoint(sandbox, "--output", "s3://b/sog/", SOGS_DEVICE="cpu"))
    assert (sandbox / "opt_ml" / "processing" / "output" / "sog").is_dir()

    (sandbox / "opt_ml" / "processing" / "output" / "sog").rmdir()
    (sandbox / "opt_ml" / "processing" / "output" / "sog").write_text("a file where the mount should be")
    result = run_entrypoint(sandbox, SOGS_DEVICE="cpu")
    assert result.returncode == 40
    assert message(sandbox).decode("utf-8").startswith("algo-2: output path ")


def test_exit_message_is_cut_on_a_utf8_boundary(sandbox):
    blocker = sandbox / "ファイル"
    blocker.write_text("x")
    result = run_entrypoint(sandbox, "--output", str(blocker / ("場面" * 120)), SOGS_DEVICE="cpu")
    assert result.returncode == 40
    raw = message(sandbox)
    assert len(raw) <= 301  # 300 bytes + newline: several hosts fit SageMaker's 1 KB ExitMessage
    raw.decode("utf-8")  # SageMaker fails the job outright on a non-UTF-8 message
