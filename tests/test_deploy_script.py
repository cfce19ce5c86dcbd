"""scripts/deployment/deploy_sogs_container.sh with stub ``docker``, ``aws`` and ``git`` executables on PATH.

The stubs append one JSON line per call (argv, and stdin for ``docker login``) to a log, so the tests see the
exact commands a user's machine would run, in order, without Docker or AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "deployment" / "deploy_sogs_container.sh"
ACCOUNT = "123456789012"
REGISTRY = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"

STUB = """#!/usr/bin/env python3
import json, os, sys
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
entry = {"cmd": name, "args": args}
if name == "docker" and args[:1] == ["login"]:
    entry["stdin"] = sys.stdin.read()
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\\n")
if name == "git":
    if args[:2] == ["rev-parse", "--short"]:
        print(os.environ.get("STUB_SHA", "abc1234"))
    elif args[:2] == ["status", "--porcelain"]:
        print(os.environ.get("STUB_DIRTY", ""), end="")
elif name == "aws":
    if args[:2] == ["sts", "get-caller-identity"]:
        if os.environ.get("STUB_NO_CREDENTIALS"):
            print("Unable to locate credentials", file=sys.stderr)
            sys.exit(255)
        print(os.environ.get("STUB_ACCOUNT", "123456789012"))
    elif args[:2] == ["ecr", "describe-repositories"] and os.environ.get("STUB_REPO_MISSING"):
        print("RepositoryNotFoundException", file=sys.stderr)
        sys.exit(254)
    elif args[:2] == ["ecr", "get-login-password"]:
        print("secret-token")
elif name == "docker" and args[:1] == ["build"] and os.environ.get("STUB_BUILD_FAILS"):
    sys.exit(1)
"""


@pytest.fixture
def stubs(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "aws", "git"):
        path = bin_dir / name
        path.write_text(STUB)
        path.chmod(0o755)
    return bin_dir


def deploy(stubs: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    log = stubs.parent / "calls.jsonl"
    log.unlink(missing_ok=True)
    python_dir = str(Path(shutil.which("python3")).parent)
    base = {
        "PATH": os.pathsep.join([str(stubs), python_dir, "/usr/bin", "/bin"]),
        "STUB_LOG": str(log),
        "HOME": str(stubs.parent),
    }
    result = subprocess.run(["bash", str(SCRIPT), *args], env={**base, **env}, capture_output=True, text=True,
                            timeout=60)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def commands(calls: list[dict], tool: str) -> list[list[str]]:
    return [c["args"] for c in calls if c["cmd"] == tool]


def test_full_deploy_builds_tags_logs_in_and_pushes(stubs):
    result, calls = deploy(stubs, "--region", "eu-west-1", "--account", ACCOUNT)
    assert result.returncode == 0, result.stderr
    docker = commands(calls, "docker")
    assert docker[0][:5] == ["build", "--platform", "linux/amd64", "-f", "Dockerfile"]
    assert f"{REGISTRY}/sogs-compressor:abc1234" in docker[0]
    assert f"{REGISTRY}/sogs-compressor:latest" in docker[0]
    login = next(c for c in calls if c["cmd"] == "docker" and c["args"][0] == "login")
    assert login["args"] == ["login", "--username", "AWS", "--password-stdin", REGISTRY]
    assert login["stdin"].strip() == "secret-token"  # the token goes through stdin, never argv
    pushes = [args[1] for args in docker if args[0] == "push"]
    assert pushes == [f"{REGISTRY}/sogs-compressor:abc1234", f"{REGISTRY}/sogs-compressor:latest"]
    aws = commands(calls, "aws")
    assert ["sts", "get-caller-identity", "--query", "Account", "--output", "text"] not in aws
    assert not any(args[:2] == ["ecr", "create-repository"] for args in aws)  # it exists
    order = [c["args"][0] if c["cmd"] == "docker" else c["args"][1] for c in calls if c["cmd"] != "git"]
    assert order.index("build") < order.index("get-login-password") < order.index("push")
    assert f"image for jobs: {REGISTRY}/sogs-compressor:abc1234" in result.stdout


def test_account_from_sts_and_missing_repository_created(stubs):
    result, calls = deploy(stubs, "--minimal", AWS_REGION="eu-west-1", STUB_REPO_MISSING="1", STUB_DIRTY=" M x")
    assert result.returncode == 0, result.stderr
    aws = commands(calls, "aws")
    assert aws[0] == ["sts", "get-caller-identity", "--query", "Account", "--output", "text"]
    create = next(args for args in aws if args[:2] == ["ecr", "create-repository"])
    assert create[create.index("--repository-name") + 1] == "sogs-compressor"
    assert "scanOnPush=true" in create
    build = commands(calls, "docker")[0]
    assert build[build.index("-f") + 1] == "Dockerfile.minimal"
    pushes = [args[1] for args in commands(calls, "docker") if args[0] == "push"]
    assert pushes == [f"{REGISTRY}/sogs-compressor:abc1234-dirty-minimal",
                      f"{REGISTRY}/sogs-compressor:latest-minimal"]


def test_environment_gives_account_region_and_repository(stubs):
    result, calls = deploy(stubs, AWS_ACCOUNT_ID="210987654321", AWS_REGION="us-east-2", ECR_REPOSITORY="team/sog")
    assert result.returncode == 0, result.stderr
    assert not any(args[0] == "sts" for args in commands(calls, "aws"))
    pushes = [args[1] for args in commands(calls, "docker") if args[0] == "push"]
    assert pushes[0] == "210987654321.dkr.ecr.us-east-2.amazonaws.com/team/sog:abc1234"


def test_dry_run_prints_every_command_and_runs_no_docker_or_aws(stubs):
    result, calls = deploy(stubs, "--dry-run", "--region", "eu-west-1")
    assert result.returncode == 0, result.stderr
    assert commands(calls, "docker") == [] and commands(calls, "aws") == []
    out = result.stdout
    assert "+ aws sts get-caller-identity --query Account --output text" in out
    assert "+ docker build --platform linux/amd64 -f Dockerfile" in out
    assert "aws ecr describe-repositories" in out and "aws ecr create-repository" in out
    assert "aws ecr get-login-password --region eu-west-1 | docker login --username AWS --password-stdin" in out
    assert out.count("+ docker push ") == 2


def test_test_only_builds_and_runs_self_test_without_aws(stubs):
    result, calls = deploy(stubs, "--test-only", "--no-lint", "--minimal")
    assert result.returncode == 0, result.stderr
    assert commands(calls, "aws") == []
    docker = commands(calls, "docker")
    assert [args[0] for args in docker] == ["build", "run"]
    assert "sogs-compressor:abc1234-minimal" in docker[0]
    run = docker[1]
    assert "sogs-compressor:abc1234-minimal" in run
    assert run[-4:] == ["/app/test_sogs_local.py", "--no-docker", "--device", "cpu"]


def test_failed_build_stops_before_aws(stubs):
    result, calls = deploy(stubs, "--region", "eu-west-1", "--account", ACCOUNT, STUB_BUILD_FAILS="1")
    assert result.returncode != 0
    assert not any(args[:1] == ["ecr"] for args in commands(calls, "aws"))
    assert not any(args[0] in ("login", "push") for args in commands(calls, "docker"))


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"AWS_ACCOUNT_ID": ACCOUNT}, "no AWS region"),
        (("--region", "eu-west-1"), {"STUB_NO_CREDENTIALS": "1"}, "no AWS account"),
        (("--region", "eu-west-1", "--account", "12345"), {}, "bad AWS account id"),
        (("--repository", "Bad Name",), {}, "bad repository name"),
        (("--region",), {}, "--region needs a value"),
        (("--push-everything",), {}, "unknown option --push-everything"),
    ],
)
def test_clear_errors(stubs, args, env, message):
    result, calls = deploy(stubs, *args, **env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line
    assert commands(calls, "docker") == []


def test_help_lists_the_flags(stubs):
    result, _ = deploy(stubs, "--help")
    assert result.returncode == 0
    for flag in ("--account", "--region", "--repository", "--minimal", "--test-only", "--dry-run"):
        assert flag in result.stdout


def test_test_only_dry_run_lints_builds_and_self_tests(stubs):
    result, calls = deploy(stubs, "--test-only", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert calls == [c for c in calls if c["cmd"] == "git"]  # nothing but git ran
    lines = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert lines[0] == "+ bash scripts/lint.sh"
    assert lines[1].startswith("+ docker build --platform linux/amd64 -f Dockerfile -t sogs-compressor:abc1234 ")
    assert lines[2].startswith("+ docker run --rm --entrypoint python")
