"""Cameras inside the scene looking outward: how room-scale and unbounded captures are actually viewed.

Orbit views look at the scene from outside its bounding box; a hallway or a garden capture is looked at from
within, where nearby splats fill much of the picture and their errors are magnified. These views stand where a
viewer would: at the centre of the scene's robust box (``camera.robust_bounds``), or at the nearest point of a
coarse grid around it that no renderable splat encloses (a camera inside a splat's 3-sigma ellipsoid would see
that one splat fill the picture, or nothing of it once its centre is behind the near plane: neither is how the
scene looks). Each position looks out in evenly spaced horizontal headings with a viewer's field of view; a
heading that would see no splat centre at all is turned until it does (and the view left out if none does).

Positions, scales, rotations and opacities are read where they are (numpy on the host, tensors on a device), so
the check costs one pass over the splats per candidate position (a few ms per million splats on a GPU).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sogs_compressor.render.camera import Camera, look_at, parse_up, robust_bounds
from sogs_compressor.render.errors import CameraSpecError
from sogs_compressor.render.rasterize import NEAR_PLANE
from sogs_compressor.splats import SplatSet
from sogs_compressor.splats_torch import SplatTensors

VIEWER_FOV_DEG = 60.0
"""Vertical field of view of the interior views (web splat viewers use 50-75 degrees)."""
HEADINGS_PER_POSITION = 4
"""Views per camera position before a second position is used (0, 90, 180, 270 degrees)."""
GRID_STEPS = (0.0, -0.25, 0.25)
"""Candidate positions: the robust box's centre moved by these fractions of its half-size along each axis."""
ENCLOSED_SIGMAS = 3.0
"""A camera closer to a splat's centre than this many standard deviations (Mahalanobis) is inside the splat."""
MIN_OPACITY = 1.0 / 255.0
VISIBILITY_SAMPLE = 200_000
HEADING_TURNS = 8
"""Headings tried (in 45-degree turns) for a view whose first heading sees no splat centre."""


def placement_columns(splats: SplatSet | SplatTensors) -> dict[str, torch.Tensor]:
    """Positions, log-scales, rotations and opacity logits as float tensors on the splats' own device."""
    names = ("positions", "log_scales", "rotations", "opacity_logits")
    if isinstance(splats, SplatTensors):
        return {name: getattr(splats, name).float() for name in names}
    return {name: torch.from_numpy(np.ascontiguousarray(getattr(splats, name), dtype=np.float32)) for name in names}


def _candidates(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(27, 3) grid points around the box centre, nearest to the centre first (a fixed, deterministic order)."""
    steps = np.asarray(GRID_STEPS)
    offsets = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 3)
    order = np.lexsort((np.arange(len(offsets)), np.abs(offsets).sum(axis=1)))
    return (low + high) / 2.0 + offsets[order] * (high - low) / 2.0


def enclosing_opacity(point: np.ndarray, columns: dict[str, torch.Tensor]) -> float:
    """The highest opacity of a renderable splat whose 3-sigma ellipsoid contains ``point`` (0.0 when none).

    A bounding-sphere test (3 x the largest axis) picks the few splats near the point; only those are rotated
    into their own frame for the exact Mahalanobis distance.
    """
    means = columns["positions"]
    p = torch.as_tensor(point, dtype=torch.float32, device=means.device)
    log_scales = columns["log_scales"]
    reach = ENCLOSED_SIGMAS * torch.exp(log_scales.amax(dim=1))
    offset = means - p
    near = (offset.square().sum(dim=1) < reach.square()) & torch.isfinite(reach)
    opacity = torch.sigmoid(columns["opacity_logits"])
    near &= opacity >= MIN_OPACITY
    idx = torch.nonzero(near).squeeze(1)
    if idx.numel() == 0:
        return 0.0
    q = torch.nn.functional.normalize(columns["rotations"][idx], dim=-1)
    w, x, y, z = q.unbind(-1)
    rot = torch.stack([  # columns: the splat's axes in world space
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)
    local = torch.einsum("nij,ni->nj", rot, -offset[idx])  # the point in each splat's frame
    scale = torch.exp(log_scales[idx]).clamp_min(1e-30)
    inside = (local / scale).square().sum(dim=1) < ENCLOSED_SIGMAS**2
    return float(opacity[idx][inside].max()) if bool(inside.any()) else 0.0


def choose_positions(splats: SplatSet | SplatTensors, count: int) -> list[tuple[np.ndarray, float]]:
    """Up to ``count`` camera positions inside the robust box, each with the opacity of the splat enclosing it:
    the candidates no splat encloses, nearest the centre first; failing those, the least enclosed ones."""
    columns = placement_columns(splats)
    low, high = robust_bounds(columns["positions"] if isinstance(splats, SplatTensors) else splats.positions)
    scored = []
    for point in _candidates(low, high):
        opacity = enclosing_opacity(point, columns)
        scored.append((point, opacity))
        if sum(1 for _, o in scored if o == 0.0) >= count:
            break
    clear = [entry for entry in scored if entry[1] == 0.0]
    if len(clear) >= count:
        return clear[:count]
    rest = sorted((entry for entry in scored if entry[1] > 0.0), key=lambda entry: entry[1])
    return (clear + rest)[:count]


def _sees_splats(camera: Camera, sample: torch.Tensor) -> bool:
    """Whether any sampled splat centre lies in the camera's view, beyond the near plane."""
    rot = torch.as_tensor(camera.rotation, dtype=torch.float32, device=sample.device)
    trans = torch.as_tensor(camera.translation, dtype=torch.float32, device=sample.device)
    p = sample @ rot.T + trans
    z = p[:, 2]
    u = camera.fx * p[:, 0] / z + camera.cx
    v = camera.fy * p[:, 1] / z + camera.cy
    seen = (z > NEAR_PLANE) & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    return bool(seen.any())


def interior_cameras(
    splats: SplatSet | SplatTensors,
    count: int,
    width: int,
    height: int,
    up: np.ndarray | str | None = None,
    fov_y_deg: float = VIEWER_FOV_DEG,
) -> list[Camera]:
    """``count`` views from inside the scene looking outward (see the module docstring); kind ``interior``.

    A view that sees no splat centre in any heading is left out (a scene smaller than the near plane's distance,
    say), so fewer views, or none, may come back: the orbit views still judge such a scene.
    """
    if count < 1:
        raise CameraSpecError("at least one view is needed")
    up_vec = parse_up(up) if up is None or isinstance(up, str) else np.asarray(up, np.float64)
    up_vec = up_vec / np.linalg.norm(up_vec)
    helper = np.array([1.0, 0.0, 0.0]) if abs(up_vec[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    axis_a = np.cross(up_vec, helper)
    axis_a /= np.linalg.norm(axis_a)
    axis_b = np.cross(up_vec, axis_a)
    per_position = min(count, HEADINGS_PER_POSITION)
    positions = choose_positions(splats, math.ceil(count / per_position))
    means = placement_columns(splats)["positions"]
    sample = means[:: max(1, means.shape[0] // VISIBILITY_SAMPLE)]
    sample = sample[torch.isfinite(sample).all(dim=1)]
    cameras = []
    for i in range(count):
        eye, _ = positions[(i // per_position) % len(positions)]
        first = 360.0 * (i % per_position) / per_position + 45.0 * (i // per_position)
        for turn in range(HEADING_TURNS):
            heading = (first + turn * 360.0 / HEADING_TURNS) % 360.0
            angle = math.radians(heading)
            direction = math.cos(angle) * axis_a + math.sin(angle) * axis_b
            name = f"interior-{i}-hd{heading:.0f}"
            camera = look_at(eye, eye + direction, up_vec, width, height, fov_y_deg, name, "interior")
            if _sees_splats(camera, sample):
                cameras.append(camera)
                break
    return cameras
