"""Views from inside the scene: where the interior cameras stand, what they see, and the near plane they rely on.

The room scene is a closed box of opaque flat splats (walls, floor, ceiling) with a small cluster of splats
inside: from outside (orbit views) the walls hide the cluster; from inside it is in view.
"""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from triton_interpreter import run_interpreted

from sogs_compressor.render.camera import look_at, robust_bounds
from sogs_compressor.render.interior import (
    VIEWER_FOV_DEG,
    choose_positions,
    enclosing_opacity,
    interior_cameras,
    placement_columns,
)
from sogs_compressor.render.quality import default_cameras, quality_check, render_views
from sogs_compressor.render.rasterize import NEAR_PLANE, prepare, render
from sogs_compressor.sample import generate_scene
from sogs_compressor.splats import SplatSet
from sogs_compressor.splats_torch import SplatTensors

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]
ROOM_HALF = np.array([5.0, 3.0, 5.0])  # x, y (up is -y), z
FURNITURE_CENTRE = np.array([0.0, 1.0, 3.0])  # in front of the first interior heading (+z), near the floor


def _splats(positions: np.ndarray, log_scales: np.ndarray, colours: np.ndarray, opacity_logit: float) -> SplatSet:
    n = len(positions)
    rotations = np.zeros((n, 4), np.float32)
    rotations[:, 0] = 1.0
    return SplatSet(positions=positions.astype(np.float32), log_scales=log_scales.astype(np.float32),
                    rotations=rotations, opacity_logits=np.full(n, opacity_logit, np.float32),
                    f_dc=colours.astype(np.float32), f_rest=np.zeros((n, 0), np.float32))


def concat(*parts: SplatSet) -> SplatSet:
    return SplatSet(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in
                       ("positions", "log_scales", "rotations", "opacity_logits", "f_dc", "f_rest")})


def room_scene(spacing: float = 0.5, seed: int = 0) -> SplatSet:
    """Six opaque walls of axis-aligned flat splats (thin along the wall's normal), a colour per wall, and a
    cluster of 200 small splats inside the room."""
    rng = np.random.default_rng(seed)
    walls = []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        grids = [np.arange(-ROOM_HALF[a], ROOM_HALF[a] + 1e-9, spacing) for a in others]
        u, v = (g.ravel() for g in np.meshgrid(*grids, indexing="ij"))
        for sign in (-1.0, 1.0):
            positions = np.zeros((len(u), 3))
            positions[:, axis] = sign * ROOM_HALF[axis]
            positions[:, others[0]], positions[:, others[1]] = u, v
            log_scales = np.full((len(u), 3), np.log(0.6 * spacing))
            log_scales[:, axis] = np.log(0.01)
            colour = rng.uniform(-1.0, 1.0, 3) + 0.05 * rng.normal(size=(len(u), 3))
            walls.append(_splats(positions, log_scales, colour, 5.0))
    furniture = _splats(FURNITURE_CENTRE + rng.normal(0, 0.3, (200, 3)), np.full((200, 3), np.log(0.08)),
                        rng.uniform(-1.0, 1.0, (200, 3)), 3.0)
    return concat(*walls, furniture)


def inside_room(point: np.ndarray) -> bool:
    return bool(np.all(np.abs(point) < ROOM_HALF - 0.5))


def test_interior_views_of_a_room_stand_inside_it_and_see_walls_all_around() -> None:
    scene = room_scene()
    cameras = interior_cameras(scene, 4, 48, 48, "-y")
    assert [c.kind for c in cameras] == ["interior"] * 4
    assert [c.name for c in cameras] == ["interior-0-hd0", "interior-1-hd90", "interior-2-hd180", "interior-3-hd270"]
    g = prepare(scene, CPU)
    for cam in cameras:
        assert inside_room(cam.center), cam.center
        assert cam.fy == pytest.approx(24.0 / np.tan(np.radians(VIEWER_FOV_DEG / 2)))
        view = render(g, cam)
        assert view.visible > 0
        assert float(view.alpha.min()) > 0.95  # the walls fill every pixel: nothing of the outside shows
    headings = [c.rotation[2] for c in cameras]  # forward axes: level, 90 degrees apart
    assert all(abs(h[1]) < 1e-9 for h in headings)
    assert abs(float(np.dot(headings[0], headings[1]))) < 1e-9
    assert float(np.dot(headings[0], headings[2])) == pytest.approx(-1.0)


def test_a_change_hidden_from_orbit_views_shows_in_interior_views() -> None:
    scene = room_scene()
    changed = scene.f_dc.copy()
    changed[-200:] += 0.4  # only the furniture inside the room
    compressed = replace(scene, f_dc=changed)
    report = quality_check(scene, compressed, "fast", CPU, views=2, interior=2, size=48)
    kinds = report["by_kind"]
    assert kinds["orbit"]["views"] == 2 and kinds["interior"]["views"] == 2
    # the walls hide the change from outside (all but the ~1e-4 of light a pixel passes before it stops)
    assert kinds["orbit"]["psnr"]["worst"] > 70.0
    assert kinds["interior"]["psnr"]["worst"] < 35.0  # heading 0 looks straight at it
    assert report["score"]["psnr_content"] == kinds["interior"]["psnr_content"]["mean"]
    assert report["summary"]["psnr"]["worst"] == kinds["interior"]["psnr"]["worst"]


def test_the_camera_never_stands_inside_a_splat() -> None:
    room = room_scene()
    # one large opaque splat around the room's centre: its 3-sigma ellipsoid (radius 1.2) holds the centre
    blob = _splats(np.zeros((1, 3)), np.full((1, 3), np.log(0.4)), np.ones((1, 3)), 4.0)
    scene = concat(room, blob)
    low, high = robust_bounds(scene.positions)
    centre = (low + high) / 2
    columns = placement_columns(scene)
    assert enclosing_opacity(centre, columns) > 0.9
    (position, enclosed), = choose_positions(scene, 1)
    assert enclosed == 0.0 and enclosing_opacity(position, columns) == 0.0
    assert np.linalg.norm(position - centre) > 1.2
    assert inside_room(position)
    g = prepare(scene, CPU)
    for cam in interior_cameras(scene, 2, 48, 48, "-y"):
        assert np.allclose(cam.center, position)
        assert float(render(g, cam).alpha.min()) > 0.95


def test_interior_views_of_the_sample_scene_see_splats_and_match_on_the_device_path() -> None:
    scene = generate_scene(1500, sh_degree=1, seed=3)
    cameras = default_cameras(scene, "fast", size=40)
    assert [c.kind for c in cameras] == ["orbit", "orbit", "interior", "interior"]
    low, high = robust_bounds(scene.positions)
    for view, cam in zip(render_views(scene, cameras, CPU), cameras, strict=True):
        assert view.visible > 0 and float(view.alpha.mean()) > 0.05, cam.name
        if cam.kind == "interior":
            assert np.all((low <= cam.center) & (cam.center <= high))
    on_device = default_cameras(SplatTensors.from_splats(scene, CPU), "fast", size=40)
    assert [c.to_dict() for c in on_device] == [c.to_dict() for c in cameras]
    assert [c.to_dict() for c in default_cameras(scene, "fast", size=40)] == [c.to_dict() for c in cameras]


def test_a_heading_that_sees_nothing_is_turned_until_it_sees_splats() -> None:
    # splats only on the +z side of the box centre: a camera looking towards -z would see nothing
    rng = np.random.default_rng(1)
    positions = np.stack([rng.uniform(-3, 3, 2000), rng.uniform(-3, 3, 2000), rng.uniform(0.5, 6, 2000)], axis=1)
    positions = np.concatenate([positions, [[0.0, 0.0, -0.2]]])  # pull the box's centre near z = 0... barely
    scene = _splats(positions, np.full((2001, 3), np.log(0.05)), rng.uniform(-1, 1, (2001, 3)), 3.0)
    g = prepare(scene, CPU)
    for cam in interior_cameras(scene, 4, 32, 32, "-y"):
        assert render(g, cam).visible > 0, cam.name


def test_a_scene_smaller_than_the_near_distance_is_judged_by_its_orbit_views_alone() -> None:
    scene = generate_scene(500, sh_degree=0, seed=5)
    tiny = replace(scene, positions=scene.positions * 0.02, log_scales=scene.log_scales + np.log(0.02))
    assert interior_cameras(tiny, 2, 32, 32, "-y") == []  # every splat is nearer than the near plane (0.2)
    report = quality_check(tiny, tiny, "fast", CPU, size=32)
    assert report["cameras"]["kinds"] == {"orbit": 2} and report["score"]["psnr_content"] == 100.0


NEAR_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    import numpy as np
    sys.path.insert(0, "tests")
    from test_interior import near_plane_scene
    from sogs_compressor.render.rasterize import prepare, render
    out = {}
    for depth in (0.1, 0.3):
        scene, camera = near_plane_scene(depth)
        g = prepare(scene, torch.device("cpu"))
        for compositor in ("torch", "triton"):
            view = render(g, camera, compositor=compositor)
            out[f"{compositor}-{depth}"] = [view.visible, float(view.alpha.mean())]
    print(json.dumps(out))
    """
)


def near_plane_scene(depth: float):
    """A large opaque splat ``depth`` in front of the camera (it would cover the whole picture) and a small one
    at depth 5 (about 2% of the picture): a camera standing in or right next to a splat."""
    camera = look_at([0, 0, 0], [0, 0, 1], [0, -1, 0], 32, 32, 60.0, "near")
    scene = _splats(np.array([[0.0, 0.0, depth], [0.0, 0.0, 5.0]]), np.log(np.array([[2.0] * 3, [0.1] * 3])),
                    np.ones((2, 3)), 4.0)
    return scene, camera


@pytest.mark.parametrize("depth", [0.1, 0.3])
def test_splats_nearer_than_the_near_plane_are_culled_on_the_cpu(depth: float) -> None:
    scene, camera = near_plane_scene(depth)
    view = render(prepare(scene, CPU), camera)
    if depth < NEAR_PLANE:
        assert view.visible == 1 and float(view.alpha.mean()) < 0.1  # only the small far splat
    else:
        assert view.visible == 2 and float(view.alpha.mean()) > 0.9  # the near one fills the picture


def test_both_compositors_cull_the_near_plane_alike() -> None:
    """The Triton compositor (through Triton's interpreter on CPU, as CI runs it) sees the same culled set."""
    out = run_interpreted(NEAR_SCRIPT, (3, 9), "Triton's interpreter before 3.9 is not used here")
    for depth in ("0.1", "0.3"):
        (v_torch, a_torch), (v_triton, a_triton) = out[f"torch-{depth}"], out[f"triton-{depth}"]
        assert v_torch == v_triton and a_torch == pytest.approx(a_triton, abs=1e-5)
    assert out["torch-0.1"][0] == 1 and out["torch-0.1"][1] < 0.1
    assert out["torch-0.3"][0] == 2 and out["torch-0.3"][1] > 0.9
