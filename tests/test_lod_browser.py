"""The PlayCanvas engine (npm ``playcanvas``, headless Chromium, as ``test_viewer``) streams our Streamed SOG: the
page written beside ``--layout lod`` output loads lod-meta.json, shows the scene with no console errors, and once
its chunks have loaded looks like the single-file ``.sog`` page of the same scene."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_viewer import browser, cli, open_pages  # noqa: F401 - browser is a fixture

from sogs_compressor.sample import generate_scene
from sogs_compressor.write import viewer
from sogs_compressor.write.ply import write_ply

FLAGS = ("--preset", "fast", "--device", "cpu", "--quality-check", "off",
         "--viewer-engine", "/engine/playcanvas.min.js")


def content_psnr(shot: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """PSNR over the pixels either screenshot drew in (more than 8 levels from the page's background), and their
    number."""
    background = np.round(np.array(viewer.BACKGROUND) * 255)
    drawn = (np.abs(shot - background).max(axis=2) > 8) | (np.abs(reference - background).max(axis=2) > 8)
    mse = np.mean((shot[drawn] - reference[drawn]) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse)), int(drawn.sum())


def without_level_zero(folder: Path, target: Path) -> None:
    """A copy of a Streamed SOG whose tree no longer lists level 0: the engine can only show coarser levels."""
    shutil.copytree(folder, target)
    meta = json.loads((target / "lod-meta.json").read_text())
    pending = [meta["tree"]]
    while pending:
        node = pending.pop()
        node.get("lods", {}).pop("0", None)
        pending.extend(node.get("children", []))
    meta["counts"][0] = 0
    meta["count"] = sum(meta["counts"])
    (target / "lod-meta.json").write_text(json.dumps(meta))


@pytest.mark.slow
def test_engine_streams_our_lod_output_like_the_single_sog(browser, tmp_path):  # noqa: F811 - the fixture
    scene = tmp_path / "sample.ply"
    write_ply(generate_scene(20000, sh_degree=0, seed=3), scene)
    site = tmp_path / "site"
    (site / "engine").mkdir(parents=True)
    shutil.copy(browser["engine"] / "playcanvas.min.js", site / "engine")
    # 4K-splat chunks: 3 levels in 9 chunk files, several leaves each
    proc = cli("compress", scene, "-o", site / "lod", "--layout", "lod", "--lod-levels", "3", "--lod-chunk-count",
               "4", *FLAGS, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["lod"]["chunks"] > 3
    proc = cli("compress", scene, "-o", site / "single", "--layout", "bundle", *FLAGS)
    assert proc.returncode == 0, proc.stderr
    without_level_zero(site / "lod", site / "coarse")
    pages = [(f"{kind}/sample.html", str(tmp_path / f"{kind}.png")) for kind in ("lod", "single", "coarse")]
    report = open_pages(browser, site, pages, tmp_path / "p", 300, settle=True)
    for page in report["pages"]:
        assert page["state"]["error"] is None and page["state"]["frames"] >= 2 and "waitError" not in page, page
        assert page["pageErrors"] == [] and page["failedRequests"] == [] and page["badResponses"] == [], page
        assert [m for m in page["console"] if m["type"] == "error"] == [], page["console"]

    from PIL import Image

    lod, single, coarse = (np.asarray(Image.open(shot).convert("RGB")).astype(np.float64) for _, shot in pages)
    match, drawn = content_psnr(lod, single)
    control, _ = content_psnr(coarse, single)
    print(f"streamed vs single .sog page: content PSNR {match:.2f} dB over {drawn} pixels; level 0 removed: "
          f"{control:.2f} dB; {report['pages'][0]['seconds']:.1f} s in the browser")
    # Measured (20K SH-0 sample, 3 levels in 9 chunks, 300x256, the page's first view; the same in every run):
    # 47.5 dB streamed vs single (each chunk has its own codebooks); wrong pictures of the same view: level 0
    # gone from the tree 24.7 dB, level 1 alone (as a .sog behind the same page) 24.7 dB, level 2 alone 21.3 dB
    # (decimating random splats changes much). 40 dB leaves room for other Chromium builds and stays far above.
    assert drawn > 1000
    assert match > 40.0, "the streamed page does not show level 0 as the single .sog page does"
    assert control < 40.0
