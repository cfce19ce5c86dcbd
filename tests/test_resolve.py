"""Every requirement set we tell people to install resolves from the public indexes alone.

Each check is a real ``pip install --dry-run --report`` with pip's configuration files switched off and every
``PIP_*`` variable removed, so a developer machine's local wheel directory, mirror or constraint file cannot make a
set look installable when it is not (torch 2.13.0 with triton 3.9.0 was ResolutionImpossible on PyPI and went
unnoticed because this project's machines carry a local torch wheel). The sets:

- the tests' set on this Linux machine, from PyPI (torch's Linux wheel there is the CUDA build);
- for macOS (arm64) and Windows: that every pin of the test set (macOS) and of the runtime set (Windows), markers
  evaluated for that system, has a wheel there on PyPI. Only the pins themselves (``--no-deps``): pip judges the
  markers of dependencies (torch's ``nvidia-*; platform_system == "Linux"``) for the machine it runs on, whatever
  ``--platform`` says, so a cross-system resolution with pip would ask for Linux-only wheels;
- each image's ``requirements.txt`` with the image's Python version and platform, from PyPI;
- torch from the index each Dockerfile and ``setup_venv.sh`` names (download.pytorch.org): skipped, saying so,
  when that index cannot be reached from here.

The resolutions run side by side (they wait on the network, not the CPU). Where the index serves no PEP 658
metadata, pip's ``fast-deps`` reads each wheel's metadata by HTTP range requests instead of downloading GBs.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/simple"
tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")

pytestmark = pytest.mark.network

# Python and glibc of each image's base, by the base's distribution release.
BASE_PYTHON = {"ubuntu22.04": ("3.10", 35), "ubuntu24.04": ("3.12", 39), "bookworm": (None, 36)}
# Marker environments of the other systems people run the CPU path on.
MACOS_ARM64 = {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix", "platform_machine": "arm64"}
WINDOWS_AMD64 = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "platform_machine": "AMD64"}


@functools.cache
def unreachable_reason(index: str) -> str:
    """Why INDEX cannot be reached ("" when it can), asked once per index with growing patience.

    One slow answer is not an unreachable index: a single 10 s probe timed out on a CI machine that installs from
    PyPI minutes earlier, which failed the suite. Only three failed attempts (15, 30 and 60 s) count as unreachable.
    """
    error: OSError | None = None
    for attempt, timeout in enumerate((15, 30, 60)):
        try:
            urllib.request.urlopen(index.rstrip("/") + "/", timeout=timeout).close()
            return ""
        except OSError as failure:
            error = failure
            if "Name or service not known" in str(failure) or "nodename nor servname" in str(failure):
                break  # no DNS entry for it here: waiting will not change that
            time.sleep(2 ** attempt)
    return f"{index} cannot be reached from here ({error})"


def torch_version() -> str:
    match = re.search(r"^TORCH_VERSION=(\S+)$", (REPO / "scripts" / "setup_venv.sh").read_text(), re.M)
    assert match, "scripts/setup_venv.sh has no TORCH_VERSION="
    return match.group(1)


def requirement_lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def runtime_set() -> list[str]:
    return [f"torch=={torch_version()}", *project()["dependencies"], *requirement_lines(REPO / "requirements.txt")]


def dev_set() -> list[str]:
    return [*runtime_set(), *project()["optional-dependencies"]["test"],
            *requirement_lines(REPO / "requirements-dev.txt")]


def for_system(requirements: list[str], system: dict[str, str], python: str) -> list[str]:
    """The requirements whose markers hold on SYSTEM, markers dropped (pip would judge them for this machine)."""
    environment = {**default_environment(), **system, "python_version": python, "python_full_version": f"{python}.0"}
    kept = []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment):
            requirement.marker = None
            kept.append(str(requirement))
    return kept


def manylinux_tags(glibc_minor: int) -> list[str]:
    """Every x86_64 manylinux tag a glibc 2.GLIBC_MINOR system accepts (pip does not widen ``--platform`` itself)."""
    legacy = ["manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"]
    return [f"manylinux_2_{minor}_x86_64" for minor in range(glibc_minor, 4, -1)] + legacy


def image_target(dockerfile: str) -> tuple[str, list[str], str]:
    """(Python version, platform tags, torch index URL) of DOCKERFILE's final image."""
    text = (REPO / dockerfile).read_text()
    base = re.search(r"^ARG (?:CUDA|PYTHON)_BASE=(\S+)$", text, re.M).group(1)
    index = re.search(r"^ARG TORCH_INDEX_URL=(\S+)$", text, re.M).group(1)
    release = next(name for name in BASE_PYTHON if name in base)
    python, glibc = BASE_PYTHON[release]
    python = python or re.search(r"python:(\d+\.\d+)", base).group(1)
    return python, manylinux_tags(glibc), index


@dataclass
class Resolution:
    """One ``pip install --dry-run --report`` of REQUIREMENTS against INDEX, for a target Python and platform."""

    requirements: list[str]
    index: str = PYPI
    python: str | None = None
    platforms: list[str] = field(default_factory=list)
    no_deps: bool = False
    report: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None
    unreachable: str = ""

    def start(self, directory: Path) -> None:
        self.unreachable = unreachable_reason(self.index)
        if self.unreachable:
            return
        self.path = directory / f"report-{id(self)}.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
                   "--no-input", "--timeout", "60", "--retries", "8", "--report", str(self.path),
                   "--index-url", self.index]
        if Version(version("pip")) >= Version("24.0"):
            command.append("--use-feature=fast-deps")
        if self.platforms:
            # --target: pip before 23.3 takes other platforms only for a target folder (nothing is written).
            command += ["--only-binary=:all:", "--python-version", self.python, "--target", str(directory / "t")]
            command += [f"--platform={platform}" for platform in self.platforms]
        if self.no_deps:
            command.append("--no-deps")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        environment.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
        self.process = subprocess.Popen([*command, *self.requirements], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=environment)

    def installed(self) -> dict[str, str]:
        """{name: version} pip would install; fails the test with pip's own words when it cannot resolve."""
        if self.unreachable:
            if self.index == PYPI:
                pytest.fail(self.unreachable)
            pytest.skip(self.unreachable)
        output, _ = self.process.communicate(timeout=600)
        assert self.process.returncode == 0, f"pip could not resolve {self.requirements}:\n{output[-4000:]}"
        report = json.loads(self.path.read_text())
        return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}


@pytest.fixture(scope="module")
def resolutions(tmp_path_factory) -> dict[str, Resolution]:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    gpu_python, gpu_platforms, gpu_index = image_target("Dockerfile")
    cpu_python, cpu_platforms, cpu_index = image_target("Dockerfile.minimal")
    setup_index = re.search(r"SOGS_TORCH_INDEX_URL:-(\S+?)\}", (REPO / "scripts" / "setup_venv.sh").read_text())
    torch = f"torch=={torch_version()}"
    runs = {
        "tests, Linux, PyPI": Resolution(dev_set()),
        "tests, macOS arm64, PyPI": Resolution(for_system(dev_set(), MACOS_ARM64, python), python=python,
                                               platforms=["macosx_14_0_arm64", "macosx_11_0_arm64",
                                                          "macosx_10_9_universal2"], no_deps=True),
        "runtime, Windows, PyPI": Resolution(for_system(runtime_set(), WINDOWS_AMD64, python), python=python,
                                             platforms=["win_amd64"], no_deps=True),
        "CUDA image requirements.txt, PyPI": Resolution(requirement_lines(REPO / "requirements.txt"),
                                                        python=gpu_python, platforms=gpu_platforms),
        "CPU image requirements.txt, PyPI": Resolution(requirement_lines(REPO / "requirements.txt"),
                                                       python=cpu_python, platforms=cpu_platforms),
        "CUDA image torch": Resolution([torch], index=gpu_index, python=gpu_python, platforms=gpu_platforms),
        "CPU image torch": Resolution([torch], index=cpu_index, python=cpu_python, platforms=cpu_platforms),
        "setup_venv torch": Resolution([torch], index=setup_index.group(1)),
    }
    directory = tmp_path_factory.mktemp("resolve")
    for run in runs.values():
        run.start(directory)
    yield runs
    for run in runs.values():
        if run.process and run.process.poll() is None:
            run.process.kill()
            run.process.wait()


def test_tests_resolve_on_linux_from_pypi(resolutions):
    installed = resolutions["tests, Linux, PyPI"].installed()
    assert installed["torch"] == torch_version()
    # The Triton pin is the one torch asks for (a contradicting pin fails the resolution above).
    pinned = {Requirement(r).name: r for r in requirement_lines(REPO / "requirements-dev.txt")}
    assert Requirement(pinned["triton"]).specifier.contains(installed["triton"])


def test_every_test_pin_has_a_macos_wheel_and_triton_is_left_out(resolutions):
    installed = resolutions["tests, macOS arm64, PyPI"].installed()
    assert installed["torch"] == torch_version()
    assert "triton" not in installed


def test_every_runtime_pin_has_a_windows_wheel(resolutions):
    installed = resolutions["runtime, Windows, PyPI"].installed()
    assert installed["torch"] == torch_version()


@pytest.mark.parametrize("image", ["CUDA image", "CPU image"])
def test_image_requirements_resolve_for_the_image_python(resolutions, image):
    installed = resolutions[f"{image} requirements.txt, PyPI"].installed()
    pins = {Requirement(r).name.lower(): str(Requirement(r).specifier)[2:]
            for r in requirement_lines(REPO / "requirements.txt")}
    assert {name: installed[name] for name in pins} == pins


@pytest.mark.parametrize("run", ["CUDA image torch", "CPU image torch", "setup_venv torch"])
def test_torch_exists_on_the_index_we_name(resolutions, run):
    installed = resolutions[run].installed()
    assert Version(installed["torch"]).public == torch_version()
    if run == "CUDA image torch":
        assert Version(installed["torch"]).local == image_target("Dockerfile")[2].rsplit("/", 1)[-1]  # cu126
