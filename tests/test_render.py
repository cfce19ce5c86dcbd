"""The reference rasterizer against analytic footprints and a slow per-pixel, per-splat renderer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sogs_compressor.render.camera import Camera, look_at, orbit_cameras
from sogs_compressor.render.errors import NothingVisibleError
from sogs_compressor.render.rasterize import prepare, render
from sogs_compressor.render.sh import SH_C0, SH_C1, sh_basis
from sogs_compressor.splats import SplatSet

IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def identity_camera(width: int = 32, height: int = 32, f: float = 40.0, t=(0.0, 0.0, 0.0)) -> Camera:
    return Camera(IDENTITY, tuple(t), f, f, width / 2, height / 2, width, height, "identity")


def splats_from(rows: list[dict], sh_degree: int = 0) -> SplatSet:
    s = SplatSet.empty_like_columns(len(rows), sh_degree)
    for i, row in enumerate(rows):
        for key, value in row.items():
            getattr(s, key)[i] = value
    return s


def random_scene(n: int, sh_degree: int, seed: int) -> SplatSet:
    rng = np.random.default_rng(seed)
    s = SplatSet.empty_like_columns(n, sh_degree)
    s.positions[:] = rng.normal(0, 0.5, (n, 3))
    s.log_scales[:] = rng.uniform(-3, -1, (n, 3))
    s.rotations[:] = rng.normal(size=(n, 4))
    s.opacity_logits[:] = rng.normal(1, 2, n)
    s.f_dc[:] = rng.normal(0, 1, (n, 3))
    s.f_rest[:] = rng.normal(0, 0.3, s.f_rest.shape)
    return s


# --- a slow, obviously correct renderer (float64, one pixel and one splat at a time) -------------------------

def _quat_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def reference_render(splats: SplatSet, cam: Camera, background=(0.0, 0.0, 0.0)):
    """Image (H, W, 3) and alpha (H, W). SH degree <= 1. A splat touches the pixels of the 16x16 tiles its
    3-sigma box overlaps, as tiled renderers (3DGS, gsplat, ours) do."""
    R, t, centre = cam.rotation, cam.translation, cam.center
    items = []
    for i in range(splats.count):
        x, y, z = R @ splats.positions[i].astype(np.float64) + t
        if z <= 0.2:
            continue
        opacity = 1.0 / (1.0 + math.exp(-float(splats.opacity_logits[i])))
        rot = _quat_matrix(splats.rotations[i].astype(np.float64))
        scale = np.diag(np.exp(splats.log_scales[i].astype(np.float64)))
        sigma = rot @ scale @ scale @ rot.T
        limx, limy = 1.3 * cam.width / (2 * cam.fx), 1.3 * cam.height / (2 * cam.fy)
        txz, tyz = min(max(x / z, -limx), limx), min(max(y / z, -limy), limy)
        jac = np.array([[cam.fx / z, 0, -cam.fx * txz / z], [0, cam.fy / z, -cam.fy * tyz / z]])
        cov = jac @ R @ sigma @ R.T @ jac.T + 0.3 * np.eye(2)
        conic = np.linalg.inv(cov)
        u, v = cam.fx * x / z + cam.cx, cam.fy * y / z + cam.cy
        d = splats.positions[i] - centre
        d = d / np.linalg.norm(d)
        color = SH_C0 * splats.f_dc[i].astype(np.float64)
        if splats.sh_degree == 1:
            rest = splats.f_rest[i].reshape(3, 3).astype(np.float64)
            color += SH_C1 * (-d[1] * rest[:, 0] + d[2] * rest[:, 1] - d[0] * rest[:, 2])
        color = np.maximum(color + 0.5, 0.0)
        # 3DGS's radius rule: major eigenvalue with the discriminant floored at 0.1
        mid = 0.5 * (cov[0, 0] + cov[1, 1])
        radius = math.ceil(3 * math.sqrt(mid + math.sqrt(max(0.1, mid * mid - np.linalg.det(cov)))))
        box = (math.floor((u - 0.5 - radius) / 16), math.floor((v - 0.5 - radius) / 16),
               math.floor((u - 0.5 + radius + 15) / 16), math.floor((v - 0.5 + radius + 15) / 16))
        items.append((z, i, u, v, conic, opacity, color, box))
    items.sort(key=lambda item: (item[0], item[1]))
    image, alpha_out = np.zeros((cam.height, cam.width, 3)), np.zeros((cam.height, cam.width))
    for row in range(cam.height):
        for col in range(cam.width):
            transmittance, rgb = 1.0, np.zeros(3)
            for _, _, u, v, conic, opacity, color, box in items:
                if not (box[0] <= col // 16 < box[2] and box[1] <= row // 16 < box[3]):
                    continue
                dx, dy = col + 0.5 - u, row + 0.5 - v
                power = -0.5 * (conic[0, 0] * dx * dx + conic[1, 1] * dy * dy) - conic[0, 1] * dx * dy
                alpha = min(0.99, opacity * math.exp(power))
                if alpha < 1 / 255:
                    continue
                if transmittance * (1 - alpha) < 1e-4:
                    break
                rgb += color * alpha * transmittance
                transmittance *= 1 - alpha
            image[row, col] = rgb + transmittance * np.asarray(background)
            alpha_out[row, col] = 1 - transmittance
    return np.clip(image, 0, 1), alpha_out


# --- tests ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,sh_degree", [(0, 1), (1, 0), (2, 1)])
def test_matches_slow_reference_with_tiny_memory_budgets(seed: int, sh_degree: int) -> None:
    scene = random_scene(40, sh_degree, seed)
    cam = look_at([0.3, -0.5, -3.0], [0, 0, 0], [0, -1, 0], 40, 30, 50)
    expected, expected_alpha = reference_render(scene, cam, (0.1, 0.2, 0.3))
    g = prepare(scene)
    for budget in ({}, {"max_pairs": 5, "max_elements": 3000}):  # many bands and chunks vs one
        out = render(g, cam, (0.1, 0.2, 0.3), **budget)
        assert out.image.shape == (30, 40, 3)
        np.testing.assert_allclose(out.image.numpy(), expected, atol=2e-5)
        np.testing.assert_allclose(out.alpha.numpy(), expected_alpha, atol=2e-5)


def test_opaque_stack_stops_at_transmittance_floor_like_the_reference() -> None:
    rows = [{"positions": (0.0, 0.0, 3.0 + 0.01 * i), "log_scales": (-1.0, -1.0, -1.0), "opacity_logits": 6.0,
             "f_dc": (float(i), -float(i), 0.5)} for i in range(8)]
    scene = splats_from(rows)
    cam = identity_camera(16, 16)
    expected, _ = reference_render(scene, cam)
    out = render(prepare(scene), cam)
    np.testing.assert_allclose(out.image.numpy(), expected, atol=2e-5)
    # centre pixel: alpha capped at 0.99, the third splat would bring T to 1e-6 < 1e-4, so only two count
    c0 = np.clip(SH_C0 * np.array([0.0, 0.0, 0.5]) + 0.5, 0, None)
    c1 = np.clip(SH_C0 * np.array([1.0, -1.0, 0.5]) + 0.5, 0, None)
    alpha = min(0.99, 1 / (1 + math.exp(-6.0)))
    centre_expected = np.clip(c0 * alpha + c1 * alpha * (1 - alpha), 0, 1)
    # the pixel centres nearest the image centre are 0.5 px off in x and y
    assert np.abs(out.image[8, 8].numpy() - centre_expected).max() < 5e-3


def test_single_isotropic_gaussian_footprint_and_colour() -> None:
    sigma, depth, f = 0.05, 4.0, 80.0
    opacity_logit = 2.0
    scene = splats_from([{"positions": (0.0, 0.0, depth), "log_scales": (math.log(sigma),) * 3,
                          "opacity_logits": opacity_logit, "f_dc": (1.0, 0.0, -0.5)}])
    cam = identity_camera(48, 48, f)
    out = render(prepare(scene), cam)
    var_px = (f * sigma / depth) ** 2 + 0.3  # EWA at the optical axis: J = diag(f/z), plus the low-pass
    ys, xs = np.mgrid[0:48, 0:48] + 0.5
    r2 = (xs - 24.0) ** 2 + (ys - 24.0) ** 2
    opacity = 1 / (1 + math.exp(-opacity_logit))
    alpha = np.minimum(0.99, opacity * np.exp(-0.5 * r2 / var_px))
    alpha = np.where(alpha >= 1 / 255, alpha, 0.0)
    colour = np.maximum(SH_C0 * np.array([1.0, 0.0, -0.5]) + 0.5, 0.0)
    np.testing.assert_allclose(out.alpha.numpy(), alpha, atol=1e-5)
    np.testing.assert_allclose(out.image.numpy(), alpha[..., None] * colour, atol=1e-5)


def test_two_splats_composite_in_depth_order_whatever_their_file_order() -> None:
    red = {"log_scales": (-1.5,) * 3, "opacity_logits": 0.0, "f_dc": (1.77, -1.77, -1.77)}
    blue = {"log_scales": (-1.5,) * 3, "opacity_logits": 0.0, "f_dc": (-1.77, -1.77, 1.77)}
    cam = identity_camera(32, 32)
    red_front = render(prepare(splats_from([{**blue, "positions": (0, 0, 6.0)}, {**red, "positions": (0, 0, 5.0)}])), cam)
    red_front_2 = render(prepare(splats_from([{**red, "positions": (0, 0, 5.0)}, {**blue, "positions": (0, 0, 6.0)}])), cam)
    blue_front = render(prepare(splats_from([{**red, "positions": (0, 0, 6.0)}, {**blue, "positions": (0, 0, 5.0)}])), cam)
    assert torch.equal(red_front.image, red_front_2.image)
    # centre pixel (0.5 px off the axis in x and y): front alpha a1, back alpha a2, blended a1 c1 + (1-a1) a2 c2
    def alpha_at(depth: float) -> float:
        var = (40.0 * math.exp(-1.5) / depth) ** 2 + 0.3
        return 0.5 * math.exp(-0.5 * 0.5 / var)

    red_c = np.clip(SH_C0 * np.array([1.77, -1.77, -1.77]) + 0.5, 0, None)
    blue_c = np.clip(SH_C0 * np.array([-1.77, -1.77, 1.77]) + 0.5, 0, None)
    a1, a2 = alpha_at(5.0), alpha_at(6.0)
    np.testing.assert_allclose(red_front.image[16, 16].numpy(), a1 * red_c + (1 - a1) * a2 * blue_c, atol=1e-5)
    np.testing.assert_allclose(blue_front.image[16, 16].numpy(), a1 * blue_c + (1 - a1) * a2 * red_c, atol=1e-5)


def test_sh_degree_one_changes_colour_with_view_direction_as_the_formula_says() -> None:
    rest = np.array([0.8, 0.0, 0.0, 0.0, 0.6, 0.0, 0.0, 0.0, -0.7], np.float32)  # R: y, G: z, B: x terms
    scene = splats_from([{"positions": (0.0, 0.0, 0.0), "log_scales": (-1.0,) * 3, "opacity_logits": 8.0,
                          "f_dc": (0.3, 0.3, 0.3), "f_rest": rest}], sh_degree=1)
    g = prepare(scene)
    for eye in ([0.0, 0.0, -4.0], [4.0, 0.0, 0.0], [0.0, -4.0, 0.1], [-2.0, 2.0, 2.0]):
        cam = look_at(eye, [0, 0, 0], [0, -1, 0], 16, 16, 40)
        out = render(g, cam)
        d = -np.asarray(eye) / np.linalg.norm(eye)  # from camera to splat
        basis = np.array([SH_C0, -SH_C1 * d[1], SH_C1 * d[2], -SH_C1 * d[0]])
        coeffs = np.concatenate([np.full((3, 1), 0.3), rest.reshape(3, 3)], axis=1)
        expected = np.clip(coeffs @ basis + 0.5, 0, 1)
        # one splat on black: pixel = alpha * colour
        np.testing.assert_allclose((out.image[8, 8] / out.alpha[8, 8]).numpy(), expected, atol=1e-5)


def test_sh_basis_matches_closed_forms() -> None:
    d = torch.nn.functional.normalize(torch.tensor([[0.3, -0.5, 0.8]], dtype=torch.float64), dim=-1)
    x, y, z = d[0].tolist()
    basis = sh_basis(d, 3)[0]
    assert basis.shape == (16,)
    assert basis[0] == pytest.approx(0.5 / math.sqrt(math.pi))
    assert basis[2] == pytest.approx(math.sqrt(3 / (4 * math.pi)) * z)
    assert basis[6] == pytest.approx(0.25 * math.sqrt(5 / math.pi) * (3 * z * z - 1))
    assert basis[12] == pytest.approx(0.25 * math.sqrt(7 / math.pi) * z * (5 * z * z - 3))


def test_camera_frame_is_opencv_x_right_y_down_z_forward() -> None:
    cam = identity_camera(64, 64)
    right = splats_from([{"positions": (0.5, 0.0, 5.0), "log_scales": (-3.0,) * 3, "opacity_logits": 5.0}])
    down = splats_from([{"positions": (0.0, 0.5, 5.0), "log_scales": (-3.0,) * 3, "opacity_logits": 5.0}])
    a_right = render(prepare(right), cam).alpha
    a_down = render(prepare(down), cam).alpha
    # projected at u = f * x / z + cx = 40 * 0.1 + 32 = 36 (pixel column 35/36), row 32
    row, col = divmod(int(a_right.argmax()), 64)
    assert (row, col) in {(31, 35), (31, 36), (32, 35), (32, 36)}
    row, col = divmod(int(a_down.argmax()), 64)
    assert (row, col) in {(35, 31), (36, 31), (35, 32), (36, 32)}


def test_look_at_with_y_down_up_puts_world_minus_y_at_the_top() -> None:
    scene = splats_from([{"positions": (0.0, -1.0, 0.0), "log_scales": (-3.0,) * 3, "opacity_logits": 5.0}])
    for eye in ([0, 0, -5], [5, 0, 0], [3, -2, 3]):
        cam = look_at(eye, [0, 0, 0], [0, -1, 0], 64, 64)
        row, _ = divmod(int(render(prepare(scene), cam).alpha.argmax()), 64)
        assert row < 28, f"from {eye} the world-up point should be in the upper half"


def test_orbit_cameras_look_at_robust_centre_and_ignore_floaters() -> None:
    rng = np.random.default_rng(3)
    points = rng.uniform(-1, 1, (5000, 3)).astype(np.float32)
    with_floaters = points.copy()
    with_floaters[:20] = 500.0  # 0.4 % stray splats far away
    clean = orbit_cameras(points, 4, 64, 48)
    noisy = orbit_cameras(with_floaters, 4, 64, 48)
    for a, b in zip(clean, noisy, strict=True):
        assert np.linalg.norm(a.center - b.center) < 0.2
        centre_cam = a.rotation @ np.zeros(3) + a.translation
        assert abs(centre_cam[0]) < 0.1 and abs(centre_cam[1]) < 0.1  # the box centre is on the optical axis
    elevations = {round(float(np.degrees(np.arcsin(-c.center[1] / np.linalg.norm(c.center))))) for c in clean}
    assert len(elevations) == 2  # two elevations, both above (world up = -y)
    assert all(e > 0 for e in elevations)


def test_flat_2dgs_splats_render() -> None:
    scene = random_scene(30, 0, 5)
    scene.log_scales[:, 2] = -np.inf
    scene.model = "2dgs"
    out = render(prepare(scene), look_at([0, 0, -3], [0, 0, 0], [0, -1, 0], 32, 32))
    assert torch.isfinite(out.image).all() and float(out.alpha.max()) > 0.1


def test_antialiased_model_dims_small_splats() -> None:
    scene = splats_from([{"positions": (0.0, 0.0, 5.0), "log_scales": (-4.0,) * 3, "opacity_logits": 5.0}])
    plain = render(prepare(scene), identity_camera()).alpha.max()
    scene.model = "antialiased"
    compensated = render(prepare(scene), identity_camera()).alpha.max()
    assert float(compensated) < 0.2 * float(plain)


def test_all_splats_behind_the_camera_is_a_clear_error() -> None:
    scene = random_scene(20, 0, 6)
    scene.positions[:, 2] -= 10.0
    with pytest.raises(NothingVisibleError, match="behind"):
        render(prepare(scene), identity_camera())
    empty = render(prepare(scene), identity_camera(), (0.2, 0.4, 0.6), allow_empty=True)
    assert torch.allclose(empty.image, torch.tensor([0.2, 0.4, 0.6]).expand(32, 32, 3))


def test_non_finite_and_invisible_splats_are_skipped() -> None:
    scene = random_scene(30, 1, 7)
    reference = render(prepare(scene), look_at([0, 0, -3], [0, 0, 0], [0, -1, 0], 32, 32)).image
    broken = random_scene(30, 1, 7)
    extra = random_scene(3, 1, 8)
    extra.positions[0, 0] = np.nan
    extra.f_rest[1, 4] = np.inf
    extra.opacity_logits[2] = -20.0
    merged = SplatSet(*(np.concatenate([getattr(broken, k), getattr(extra, k)]) for k in (
        "positions", "log_scales", "rotations", "opacity_logits", "f_dc", "f_rest")))
    out = render(prepare(merged), look_at([0, 0, -3], [0, 0, 0], [0, -1, 0], 32, 32)).image
    assert torch.equal(out, reference)


def test_rendering_is_deterministic() -> None:
    scene = random_scene(300, 1, 9)
    g = prepare(scene)
    cam = look_at([1, -1, -3], [0, 0, 0], [0, -1, 0], 48, 40)
    assert torch.equal(render(g, cam).image, render(g, cam).image)


def test_cutting_long_tiles_into_segments_keeps_the_picture(monkeypatch) -> None:
    """A few hundred splats stacked in the same tiles, rendered whole and cut into 7-splat segments."""
    from sogs_compressor.render.quality import default_cameras
    from sogs_compressor.sample import generate_scene

    scene = generate_scene(3000, sh_degree=1, seed=11)
    g = prepare(scene)
    for cam in default_cameras(scene, "fast", size=32)[:2]:
        whole = render(g, cam, (0.2, 0.1, 0.3), compositor="torch")
        monkeypatch.setattr("sogs_compressor.render.rasterize.segment_length", lambda device: 7)
        cut = render(g, cam, (0.2, 0.1, 0.3), compositor="torch")
        monkeypatch.undo()
        assert whole.pairs == cut.pairs and whole.pairs > 20 * 4 * 7
        assert float((whole.image - cut.image).abs().max()) < 1e-5
        assert float((whole.alpha - cut.alpha).abs().max()) < 1e-5


def wide_range_scene(n: int, seed: int) -> SplatSet:
    """Sub-pixel, pixel-sized and tile-covering splats, faint to opaque (what decides which fine tiles a splat
    needs: its size and its opacity)."""
    rng = np.random.default_rng(seed)
    s = random_scene(n, 1, seed)
    s.log_scales[:] = rng.uniform(-7.0, -0.5, (n, 1)) + rng.normal(0, 0.5, (n, 3))
    s.opacity_logits[:] = rng.uniform(-6.0, 6.0, n)
    return s


@pytest.mark.parametrize("tile", [8, 4, 2])
def test_fine_tiles_give_the_picture_of_16_pixel_tiles(monkeypatch, tile: int) -> None:
    """The PyTorch compositor's finer tiles only drop tile pixels a splat adds nothing to (fine_box)."""
    from sogs_compressor.render import rasterize

    scene = wide_range_scene(2000, 5)
    g = prepare(scene)
    for cam in (look_at([0.4, -0.6, -2.5], [0, 0, 0], [0, -1, 0], 61, 47, 55),
                look_at([0.0, 0.0, 0.3], [0, 0, 2], [0, -1, 0], 64, 48, 40)):  # from among the splats
        monkeypatch.setattr(rasterize, "torch_tile", lambda device: 16)
        coarse = render(g, cam, (0.1, 0.2, 0.3), compositor="torch")
        monkeypatch.setattr(rasterize, "torch_tile", lambda device, tile=tile: tile)
        fine = render(g, cam, (0.1, 0.2, 0.3), compositor="torch")
        monkeypatch.undo()
        assert coarse.visible == fine.visible > 100
        assert fine.pairs != coarse.pairs  # the tiling really changed
        assert float((coarse.image - fine.image).abs().max()) < 2e-6
        assert float((coarse.alpha - fine.alpha).abs().max()) < 2e-6


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_projection_dot_products_give_the_values_of_the_reduction(device: str) -> None:
    """``_dot3`` replaced ``(x * y).sum(dim=-1)`` in the projection on every device: the renders stay the same only
    if it gives the very same float32 values there."""
    from sogs_compressor.render.rasterize import _dot3

    gen = torch.Generator().manual_seed(4)
    sigma = (torch.randn(200_000, 3, 3, generator=gen) * torch.rand(200_000, 3, 3, generator=gen) * 50).to(device)
    t = (torch.randn(200_000, 3, generator=gen) * 30).to(device)
    s_t = _dot3(sigma, t.unsqueeze(1))
    assert torch.equal(s_t, (sigma * t[:, None, :]).sum(dim=-1))
    assert torch.equal(_dot3(t, s_t), (t * s_t).sum(dim=-1))


def test_fine_box_of_a_pixel_sized_splat_is_the_one_tile_holding_its_visible_pixels() -> None:
    """An opaque splat of the low-pass's size centred on pixel (5, 9) reaches 1/255 only at the pixel centres 1.8 px
    around it, all in fine tile (1, 2); the box must not pay for slack beyond them (a whole pixel of it gave the
    2 x 2 tiles around and doubled the pairs of a large scene)."""
    from sogs_compressor.render.rasterize import LOW_PASS, fine_box

    box16 = torch.tensor([[0, 0, 1, 1]])
    centre = torch.tensor([5.5]), torch.tensor([9.5])
    size = torch.tensor([LOW_PASS])
    fine = fine_box(box16, *centre, size, size, torch.tensor([1.0]), 4, 4, 4)
    assert fine.tolist() == [[1, 2, 2, 3]]


def test_fine_box_stays_inside_the_16_pixel_box_and_covers_the_visible_ellipse() -> None:
    """A splat's fine tiles lie inside its 16-pixel tiles, and every pixel where its alpha reaches 1/255 (the
    slow per-pixel check) lies in one of them."""
    from sogs_compressor.render.rasterize import ALPHA_MIN, TILE, project

    scene = wide_range_scene(400, 8)
    cam = look_at([0.3, -0.2, -2.0], [0, 0, 0], [0, -1, 0], 64, 64, 60)
    g = prepare(scene)
    coarse, fine = project(g, cam), project(g, cam, tile=4)
    assert torch.equal(coarse.depth, fine.depth)  # the same splats are visible, in the same order
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    checked = 0
    for j in range(fine.depth.shape[0]):
        i = j
        x0, y0, x1, y1 = fine.box[j].tolist()
        cx0, cy0, cx1, cy1 = (coarse.box[i] * (TILE // 4)).tolist()
        assert x0 <= x1 and y0 <= y1
        assert x0 == x1 or y0 == y1 or (cx0 <= x0 < x1 <= cx1 and cy0 <= y0 < y1 <= cy1)
        u, v = fine.mean2d[j].tolist()
        a, b, c = fine.conic[j].tolist()
        dx, dy = xs - u, ys - v
        alpha = float(fine.opacity[j]) * np.exp(-0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy)
        inside16 = ((xs // TILE >= coarse.box[i, 0].item()) & (xs // TILE < coarse.box[i, 2].item())
                    & (ys // TILE >= coarse.box[i, 1].item()) & (ys // TILE < coarse.box[i, 3].item()))
        seen = (alpha >= ALPHA_MIN) & inside16
        in_fine = (xs // 4 >= x0) & (xs // 4 < x1) & (ys // 4 >= y0) & (ys // 4 < y1)
        assert not np.any(seen & ~in_fine)
        checked += int(seen.any())
    assert checked > 50
