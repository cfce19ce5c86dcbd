"""README.md's table of contents lists every section under the anchor GitHub gives it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_toc", REPO / "scripts" / "readme_toc.py")
readme_toc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_toc)


def test_anchor_follows_githubs_rule():
    seen: dict[str, int] = {}
    assert readme_toc.anchor("Smallest file at a quality target: `--target-psnr DB`", seen) == \
        "smallest-file-at-a-quality-target---target-psnr-db"
    assert readme_toc.anchor("SageMaker Python SDK v2 (`pip install \"sagemaker<3\"`, in maintenance)", seen) == \
        "sagemaker-python-sdk-v2-pip-install-sagemaker3-in-maintenance"
    assert readme_toc.anchor("Troubleshooting", seen) == "troubleshooting"
    assert readme_toc.anchor("Troubleshooting", seen) == "troubleshooting-1"


def test_headings_in_code_fences_are_not_sections():
    text = "## A\n```sh\n## not a heading\n```\n### B\n#### too deep\n"
    assert readme_toc.headings(text) == [(2, "A"), (3, "B")]


def test_readme_toc_matches_its_headings():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme_toc.START in text and readme_toc.END in text
    assert readme_toc.with_toc(text) == text, "stale table of contents: run python scripts/readme_toc.py"
    sections = [title for level, title in readme_toc.headings(text) if level == 2]
    assert len(sections) >= 10 and "Installing `sogs-compressor`" in sections


def test_every_internal_link_points_at_a_heading():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    seen: dict[str, int] = {}
    anchors = {readme_toc.anchor(title, seen) for _, title in readme_toc.headings(text)}

    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, f"README links to #{target}, which no heading has"
