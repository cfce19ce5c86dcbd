"""requirements.txt (runtime pins) and requirements-dev.txt agree with pyproject.toml and with the images."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")


def read_requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def pinned_version(requirement: Requirement) -> str:
    (spec,) = requirement.specifier
    assert spec.operator == "==", f"{requirement} is not pinned with =="
    return spec.version


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def by_name(requirements) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in requirements}


def torch_pin(dockerfile: str) -> str:
    match = re.search(r"^ARG TORCH_VERSION=(\S+)$", (REPO / dockerfile).read_text(), re.MULTILINE)
    assert match, f"{dockerfile} has no ARG TORCH_VERSION"
    return match.group(1)


def test_runtime_pins_match_pyproject_dependencies():
    declared = by_name(Requirement(d) for d in project()["dependencies"])
    pinned = by_name(read_requirements(REPO / "requirements.txt"))
    # torch comes from the CUDA or CPU wheel index in each Dockerfile, not from requirements.txt.
    assert set(pinned) == set(declared) - {"torch"}
    for name, requirement in pinned.items():
        version = pinned_version(requirement)
        assert declared[name].specifier.contains(version), f"{name}=={version} violates pyproject {declared[name]}"


def test_dev_pins_satisfy_the_test_extra():
    declared = by_name(Requirement(d) for d in project()["optional-dependencies"]["test"])
    pinned = by_name(read_requirements(REPO / "requirements-dev.txt"))
    runtime = set(by_name(read_requirements(REPO / "requirements.txt")))
    assert not runtime & set(pinned), "runtime and development pins overlap"
    for name, requirement in pinned.items():
        version = pinned_version(requirement)
        if name in declared:
            assert declared[name].specifier.contains(version), f"{name}=={version} violates {declared[name]}"


def test_both_images_pin_the_same_torch_allowed_by_pyproject():
    gpu, cpu = torch_pin("Dockerfile"), torch_pin("Dockerfile.minimal")
    assert gpu == cpu
    torch = by_name(Requirement(d) for d in project()["dependencies"])["torch"]
    assert torch.specifier.contains(gpu)
    # The tests run against the same torch the images carry.
    assert re.search(rf"^TORCH_VERSION={re.escape(gpu)}$", (REPO / "scripts" / "setup_venv.sh").read_text(), re.M)
    assert "setup_venv.sh" in (REPO / "scripts" / "test.sh").read_text()


# The module each runtime distribution is imported as (where the two names differ).
IMPORT_NAMES = {"pillow": "PIL"}


def imported_top_level_modules() -> set[str]:
    names = set()
    for path in [*(REPO / "sogs_compressor").rglob("*.py"), REPO / "compress_model.py"]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def test_every_declared_runtime_dependency_is_imported():
    # A dependency nobody imports only costs install time and image size (psutil was one).
    imported = imported_top_level_modules()
    for requirement in project()["dependencies"]:
        name = canonicalize_name(Requirement(requirement).name)
        module = IMPORT_NAMES.get(name, name.replace("-", "_"))
        assert module in imported, f"{name} is declared in pyproject.toml but sogs_compressor never imports {module}"
