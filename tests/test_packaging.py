"""The wheel users install: licence, type marker, console script, and one version everywhere.

The wheel is built for real (``pip wheel --no-deps --no-build-isolation``: the setuptools torch already needs,
no download) and its archive is read back.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import sogs_compressor

REPO = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300, cwd=build,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("sogs_compressor-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def dist_info(archive: zipfile.ZipFile, name: str) -> str:
    (member,) = [n for n in archive.namelist() if re.fullmatch(rf"sogs_compressor-[^/]+\.dist-info/{name}", n)]
    return archive.read(member).decode("utf-8")


def test_version_lives_in_one_place():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"], "the version is read from sogs_compressor.__version__"
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sogs_compressor.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", sogs_compressor.__version__)


def test_wheel_carries_version_licence_and_type_marker(wheel):
    metadata = Parser().parsestr(dist_info(wheel, "METADATA"))
    assert metadata["Version"] == sogs_compressor.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    licence = dist_info(wheel, "licenses/LICENSE")
    assert licence == (REPO / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "sogs-compressor contributors" in licence
    assert "sogs_compressor/py.typed" in wheel.namelist()
    assert not [n for n in wheel.namelist() if n.startswith(("tests/", "bench/", "scripts/"))]


def test_wheel_installs_the_console_script(wheel):
    entry_points = dist_info(wheel, "entry_points.txt")
    assert re.search(r"^\[console_scripts\]\nsogs-compressor = sogs_compressor\.cli:run$", entry_points, re.M)


def test_wheel_requires_what_pyproject_declares(wheel):
    metadata = Parser().parsestr(dist_info(wheel, "METADATA"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    required = [r for r in metadata.get_all("Requires-Dist") if "extra ==" not in r]
    assert sorted(required) == sorted(project["dependencies"])
