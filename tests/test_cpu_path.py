"""The CPU path's speed work keeps results exact: background reference renders, shared renders of repeated
views, the host probed search, the command line's lazy plugin imports."""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from plyfiles import random_splats

from sogs_compressor.pipeline import quality_cameras
from sogs_compressor.quantize.assign import nearest_centroid_with_distance
from sogs_compressor.quantize.kmeans import probed_nearest
from sogs_compressor.render.background import BackgroundReference, Cancelled
from sogs_compressor.render.errors import CameraSpecError
from sogs_compressor.render.quality import render_views

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]


def _same_render(a, b) -> bool:
    return torch.equal(a.image, b.image) and torch.equal(a.alpha, b.alpha) and a.visible == b.visible


def test_background_reference_gives_the_renders_of_the_calling_thread() -> None:
    scene = random_splats(600, 1, seed=3)
    cameras, source = quality_cameras(scene, "fast", None)
    early = BackgroundReference(scene, lambda splats: quality_cameras(splats, "fast", None), CPU)
    got_cameras, got_source, got = early.result()
    assert got_cameras == cameras and got_source == source
    direct = render_views(scene, cameras, CPU, allow_empty=True)
    assert all(_same_render(a, b) for a, b in zip(got, direct, strict=True))


def test_background_reference_hands_its_error_to_the_caller() -> None:
    def no_cameras(_splats):
        raise CameraSpecError("no views")

    early = BackgroundReference(random_splats(50, 0, seed=1), no_cameras, CPU)
    with pytest.raises(CameraSpecError, match="no views"):
        early.result()


def test_background_reference_stops_between_views_when_cancelled() -> None:
    scene = random_splats(300, 0, seed=2)
    cameras, source = quality_cameras(scene, "fast", None)
    release = threading.Event()

    def slow_cameras(_splats):
        release.wait(10)
        return cameras, source

    early = BackgroundReference(scene, slow_cameras, CPU)
    early.cancel()
    release.set()
    with pytest.raises(Cancelled):
        early.result()


def test_a_repeated_view_shares_the_first_render() -> None:
    scene = random_splats(500, 1, seed=4)
    cameras, _ = quality_cameras(scene, "fast", None)
    twin = replace(cameras[0], name="twin", kind="interior")  # same pose and intrinsics, another name
    renders = render_views(scene, [cameras[0], cameras[1], twin], CPU, allow_empty=True)
    assert renders[2] is renders[0]
    alone = render_views(scene, [twin], CPU, allow_empty=True)[0]
    assert _same_render(renders[2], alone)


def _probed_reference(x, probes, centroids, group) -> torch.Tensor:
    """The probed search written plainly: per probe slot and coarse cluster, the chunked nearest centroid among
    that cluster's centroids (``nearest_centroid_with_distance``), then the first probe of least distance."""
    n, num_probes = probes.shape
    dist = torch.full((n, num_probes), float("inf"))
    label = torch.zeros(n, num_probes, dtype=torch.int64)
    for j in range(num_probes):
        for g in torch.unique(probes[:, j]).tolist():
            rows = torch.nonzero(probes[:, j] == g).squeeze(1)
            members = torch.nonzero(group == g).squeeze(1)
            if members.numel() == 0:
                continue
            local, d = nearest_centroid_with_distance(x[rows], centroids[members])
            dist[rows, j] = d
            label[rows, j] = members[local]
    return label.gather(1, dist.argmin(dim=1, keepdim=True)).squeeze(1)


@pytest.mark.parametrize("dim", [9, 24])
def test_host_probed_search_matches_the_plain_search_exactly(dim: int) -> None:
    rng = np.random.default_rng(dim)
    x = torch.from_numpy(rng.normal(size=(3000, dim)).astype(np.float32))
    x[100:200] = x[:100]  # repeated rows
    centroids = torch.from_numpy(rng.normal(size=(400, dim)).astype(np.float32))
    centroids[300:310] = centroids[:10]  # the same centroid in two coarse clusters: ties across probes
    group = torch.from_numpy(rng.integers(0, 13, 400))
    group[group == 7] = 8  # a coarse cluster without centroids
    probes = torch.from_numpy(np.stack([rng.permutation(13)[:3] for _ in range(3000)]))
    got = probed_nearest(x, probes, centroids, group)
    assert torch.equal(got, _probed_reference(x, probes, centroids, group))


def _imported_after_parsing(command: str) -> bool:
    code = ("import sys; from sogs_compressor.cli import build_parser; "
            f"build_parser({command!r}); print('sogs_compressor.job.main' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return out.stdout.strip() == "True"


def test_built_in_commands_do_not_import_the_plugin_commands() -> None:
    assert not _imported_after_parsing("compress")
    assert _imported_after_parsing("job")


@pytest.mark.parametrize("overlap", ["1", "0"])
def test_compress_reports_the_same_quality_with_and_without_the_overlap(tmp_path: Path, overlap: str,
                                                                        monkeypatch) -> None:
    from sogs_compressor.options import CompressOptions
    from sogs_compressor.pipeline import compress_file
    from sogs_compressor.write.ply import write_ply

    ply = tmp_path / "scene.ply"
    write_ply(random_splats(1500, 1, seed=5), ply)
    monkeypatch.setenv("SOGS_BACKGROUND_REFERENCE", "0")
    plain = compress_file(ply, tmp_path / "plain", CompressOptions(device="cpu", layout="bundle", viewer="off"))
    monkeypatch.setenv("SOGS_BACKGROUND_REFERENCE", overlap)
    started = []
    original_init = BackgroundReference.__init__
    monkeypatch.setattr(BackgroundReference, "__init__",
                        lambda self, *a: started.append(1) or original_init(self, *a))
    other = compress_file(ply, tmp_path / "other", CompressOptions(device="cpu", layout="bundle", viewer="off"))
    assert len(started) == int(overlap)
    assert other.quality["views"] == plain.quality["views"]
    for name in ("scene.sog", "scene.preview.png"):
        assert (tmp_path / "other" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()
