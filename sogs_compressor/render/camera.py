"""Pinhole cameras in the OpenCV / 3DGS frame (x right, y down, z forward), orbit rigs and training cameras.

A camera maps a world point p to camera space ``R @ p + t`` and to pixel ``(fx*x/z + cx, fy*y/z + cy)``, where
pixel (i, j) covers [i, i+1) x [j, j+1) and its centre is (i + 0.5, j + 0.5); ``cx = W/2`` therefore puts the
optical axis at the image centre, as 3DGS and gsplat do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sogs_compressor.render.errors import CamerasFileError, CameraSpecError, NothingVisibleError
from sogs_compressor.strict_json import JsonRefused, loads_strict

UP_AXES = {
    "-y": (0.0, -1.0, 0.0), "+y": (0.0, 1.0, 0.0), "y": (0.0, 1.0, 0.0),
    "-z": (0.0, 0.0, -1.0), "+z": (0.0, 0.0, 1.0), "z": (0.0, 0.0, 1.0),
    "-x": (-1.0, 0.0, 0.0), "+x": (1.0, 0.0, 0.0), "x": (1.0, 0.0, 0.0),
}
DEFAULT_UP = "-y"
"""Most trained scenes (COLMAP frames) have world "up" along -y."""

MAX_IMAGE_SIDE = 8192
ROBUST_PERCENTILES = (2.0, 98.0)
ELEVATIONS_DEG = (20.0, 45.0)


@dataclass(frozen=True)
class Camera:
    """World-to-camera rotation ``R`` (3x3) and translation ``t`` (3,), intrinsics in pixels, image size."""

    R: tuple[tuple[float, float, float], ...]
    t: tuple[float, float, float]
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    name: str = ""
    kind: str = ""
    """What the view stands for in reports: ``orbit``, ``interior``, ``training`` or ``custom``."""

    @property
    def rotation(self) -> np.ndarray:
        return np.asarray(self.R, dtype=np.float64)

    @property
    def translation(self) -> np.ndarray:
        return np.asarray(self.t, dtype=np.float64)

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world space: ``-R^T t``."""
        return -self.rotation.T @ self.translation

    def resized(self, width: int, height: int) -> Camera:
        """The same view at another resolution (intrinsics scaled per axis)."""
        sx, sy = width / self.width, height / self.height
        return replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy,
                       width=int(width), height=int(height))

    def fit_long_side(self, size: int) -> Camera:
        """Scaled so the longer image side is ``size`` pixels, keeping the aspect ratio."""
        scale = size / max(self.width, self.height)
        return self.resized(max(1, round(self.width * scale)), max(1, round(self.height * scale)))

    def to_dict(self) -> dict:
        """JSON-safe description (world-to-camera R, t; camera centre; intrinsics)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "fx": round(self.fx, 4),
            "fy": round(self.fy, 4),
            "cx": round(self.cx, 4),
            "cy": round(self.cy, 4),
            "R": [[round(v, 6) for v in row] for row in self.R],
            "t": [round(v, 6) for v in self.t],
            "center": [round(float(v), 6) for v in self.center],
        }


def _as_tuple_matrix(m: np.ndarray) -> tuple[tuple[float, float, float], ...]:
    return tuple(tuple(float(v) for v in row) for row in m)


def look_at(eye, target, up, width: int, height: int, fov_y_deg: float = 50.0, name: str = "",
            kind: str = "custom") -> Camera:
    """A camera at ``eye`` looking at ``target`` with world direction ``up`` shown upwards in the image."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    check_size(width, height)
    if not 1.0 <= fov_y_deg <= 170.0:
        raise CameraSpecError(f"field of view {fov_y_deg} degrees is outside 1..170")
    forward = target - eye
    if not np.all(np.isfinite(forward)) or np.linalg.norm(forward) < 1e-12:
        raise CameraSpecError("camera eye and target must be finite and different points")
    forward /= np.linalg.norm(forward)
    down = -up / max(np.linalg.norm(up), 1e-12)
    right = np.cross(down, forward)
    if np.linalg.norm(right) < 1e-6:  # looking straight along up: pick any perpendicular
        helper = np.array([1.0, 0.0, 0.0]) if abs(forward[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
        right = np.cross(helper, forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])  # rows: camera axes in world space
    translation = -rotation @ eye
    fy = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2.0)
    return Camera(_as_tuple_matrix(rotation), tuple(float(v) for v in translation), fy, fy,
                  width / 2.0, height / 2.0, int(width), int(height), name, kind)


def check_size(width: int, height: int) -> None:
    if not (1 <= int(width) <= MAX_IMAGE_SIDE and 1 <= int(height) <= MAX_IMAGE_SIDE):
        raise CameraSpecError(f"image size {width}x{height} is outside 1..{MAX_IMAGE_SIDE} pixels per side")


def parse_up(value: str | None) -> np.ndarray:
    """``-y`` / ``+z`` / ... or three numbers ``0,-1,0`` -> a unit vector."""
    text = (value or DEFAULT_UP).strip().lower()
    if text in UP_AXES:
        return np.asarray(UP_AXES[text])
    vector = parse_floats(text, 3, "--up")
    norm = np.linalg.norm(vector)
    if not np.isfinite(norm) or norm < 1e-9:
        raise CameraSpecError(f"--up {value!r} is not a usable direction")
    return vector / norm


def parse_floats(text: str, count: int | tuple[int, ...], what: str) -> np.ndarray:
    """Comma- or space-separated finite numbers, ``count`` of them (or one of several counts)."""
    counts = (count,) if isinstance(count, int) else count
    try:
        values = np.asarray([float(v) for v in text.replace(",", " ").split()], dtype=np.float64)
    except ValueError:
        raise CameraSpecError(f"{what} {text!r}: expected {' or '.join(map(str, counts))} numbers") from None
    if values.size not in counts or not np.all(np.isfinite(values)):
        raise CameraSpecError(f"{what} {text!r}: expected {' or '.join(map(str, counts))} finite numbers")
    return values


def robust_bounds(positions, sample: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis 2nd-98th percentile box of the finite positions (so stray floaters do not widen it).

    ``positions``: (N, 3) numpy array, or a torch tensor (measured on its device with the same sample and
    percentile rule; this module imports torch only then, so the CLI's commands start without it).
    """
    on_device = not isinstance(positions, np.ndarray)
    if on_device:
        import torch

        finite = positions[torch.isfinite(positions).all(dim=1)]
    else:
        finite = positions[np.all(np.isfinite(positions), axis=1)]
    if finite.shape[0] == 0:
        raise NothingVisibleError("the scene has no splat with a finite position; nothing to look at")
    if finite.shape[0] > sample:  # a deterministic, evenly strided subsample keeps this cheap
        finite = finite[:: finite.shape[0] // sample + 1]
    if on_device:
        q = torch.tensor([p / 100.0 for p in ROBUST_PERCENTILES], dtype=torch.float64, device=finite.device)
        low, high = torch.quantile(finite.double(), q, dim=0).cpu().numpy()
        return low, high
    low, high = np.percentile(finite.astype(np.float64), ROBUST_PERCENTILES, axis=0)
    return low, high


@dataclass(frozen=True)
class OrbitFrame:
    """Where orbit views look: the robust box's centre and half-diagonal, the world up direction and two
    horizontal axes (azimuth 0 lies along ``axis_a``)."""

    centre: np.ndarray
    radius: float
    up: np.ndarray
    axis_a: np.ndarray
    axis_b: np.ndarray

    def direction(self, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
        """Unit vector from the centre towards a camera at this azimuth and elevation."""
        azimuth, elevation = math.radians(azimuth_deg), math.radians(elevation_deg)
        horizontal = math.cos(azimuth) * self.axis_a + math.sin(azimuth) * self.axis_b
        return math.cos(elevation) * horizontal + math.sin(elevation) * self.up


def orbit_frame(positions, up: np.ndarray | str | None = None) -> OrbitFrame:
    """The frame of ``orbit_cameras`` for these positions (a numpy array or a tensor: ``robust_bounds``)."""
    up_vec = parse_up(up) if up is None or isinstance(up, str) else np.asarray(up, np.float64)
    up_vec = up_vec / np.linalg.norm(up_vec)
    low, high = robust_bounds(positions)
    radius = max(float(np.linalg.norm(high - low)) / 2.0, 1e-6)
    helper = np.array([1.0, 0.0, 0.0]) if abs(up_vec[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    axis_a = np.cross(up_vec, helper)
    axis_a /= np.linalg.norm(axis_a)
    return OrbitFrame((low + high) / 2.0, radius, up_vec, axis_a, np.cross(up_vec, axis_a))


def orbit_distance(radius: float, width: int, height: int, fov_y_deg: float = 50.0, margin: float = 1.05) -> float:
    """Camera distance at which the sphere of ``radius`` fits the narrower field of view, with ``margin``."""
    fov_x = 2.0 * math.atan(math.tan(math.radians(fov_y_deg) / 2.0) * width / height)
    half_fov = min(math.radians(fov_y_deg), fov_x) / 2.0
    return margin * radius / math.sin(half_fov)


def orbit_cameras(
    positions,
    count: int,
    width: int,
    height: int,
    up: np.ndarray | str | None = None,
    fov_y_deg: float = 50.0,
    margin: float = 1.05,
) -> list[Camera]:
    """``count`` views evenly around the robust bounding box, alternating two elevations, framed to fit.

    ``positions``: (N, 3), a numpy array or a tensor on any device (``robust_bounds``).

    The camera distance makes the sphere around the robust box fit the narrower field of view, so the
    whole (robust) scene is in every picture.
    """
    if count < 1:
        raise CameraSpecError("at least one view is needed")
    frame = orbit_frame(positions, up)
    distance = orbit_distance(frame.radius, width, height, fov_y_deg, margin)
    cameras = []
    for i in range(count):
        azimuth, elevation = 360.0 * i / count, ELEVATIONS_DEG[i % len(ELEVATIONS_DEG)]
        eye = frame.centre + distance * frame.direction(azimuth, elevation)
        name = f"orbit-{i}-az{azimuth:.0f}-el{elevation:.0f}"
        cameras.append(look_at(eye, frame.centre, frame.up, width, height, fov_y_deg, name, "orbit"))
    return cameras


MAX_CAMERAS_FILE_BYTES = 64 * 2**20
MAX_TRAINING_CAMERAS = 100_000
"""A capture of more cameras than this is not plausible (real ones hold tens to a few thousand)."""
MAX_COORDINATE = 1e15
"""Positions and focal lengths beyond this are refused: no capture is that large, and float32 math overflows."""
MAX_NAME_CHARS = 120


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(value: object, shape: tuple[int, ...], where: str, what: str) -> np.ndarray:
    """A JSON list (of lists) of finite numbers of exactly ``shape``, checked before any conversion."""
    text = " x ".join(map(str, shape))
    rows = value if len(shape) == 2 else [value]
    if not isinstance(rows, list) or len(rows) != (shape[0] if len(shape) == 2 else 1):
        raise CamerasFileError(f"{where}: {what} must be {text} numbers")
    for row in rows:
        if not isinstance(row, list) or len(row) != shape[-1]:
            raise CamerasFileError(f"{where}: {what} must be {text} numbers")
        if not all(_finite_number(v) for v in row):
            raise CamerasFileError(f"{where}: {what} must be {text} finite numbers")
    array = np.asarray(value, dtype=np.float64)
    if np.abs(array).max() > MAX_COORDINATE:
        raise CamerasFileError(f"{where}: {what} holds a value beyond {MAX_COORDINATE:g}")
    return array


def _camera_from_3dgs_entry(entry: object, index: int, source: Path) -> Camera:
    """One entry of a 3DGS ``cameras.json``: ``rotation`` is camera-to-world, ``position`` the centre."""
    where = f"{source}: camera #{index}"
    if not isinstance(entry, dict):
        raise CamerasFileError(f"{where} is not an object")
    missing = [key for key in ("width", "height", "fx", "fy", "position", "rotation") if key not in entry]
    if missing:
        raise CamerasFileError(f"{where} lacks the field{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(map(repr, missing))}")
    for key in ("width", "height", "fx", "fy"):
        if not _finite_number(entry[key]):
            raise CamerasFileError(f"{where}: {key} must be a finite number")
    width, height, fx, fy = (entry[key] for key in ("width", "height", "fx", "fy"))
    if not (width == int(width) and height == int(height) and 1 <= width <= 100_000 and 1 <= height <= 100_000):
        raise CamerasFileError(f"{where} has an implausible image size {width}x{height}")
    if not (0 < fx <= MAX_COORDINATE and 0 < fy <= MAX_COORDINATE):
        raise CamerasFileError(f"{where}: fx and fy must be positive focal lengths in pixels")
    position = _numbers(entry["position"], (3,), where, "position")
    cam_to_world = _numbers(entry["rotation"], (3, 3), where, "rotation")
    if np.abs(cam_to_world @ cam_to_world.T - np.eye(3)).max() > 1e-3 or np.linalg.det(cam_to_world) < 0:
        raise CamerasFileError(f"{where}: rotation is not a rotation matrix")
    rotation = cam_to_world.T
    translation = -rotation @ position
    label = entry.get("img_name", entry.get("id", index))
    name = (label if isinstance(label, str) else str(label) if _finite_number(label) else str(index))
    name = "".join(ch if ch.isprintable() else "?" for ch in name[:MAX_NAME_CHARS])
    width, height = int(width), int(height)
    return Camera(_as_tuple_matrix(rotation), tuple(float(v) for v in translation), float(fx), float(fy),
                  width / 2.0, height / 2.0, width, height, name, "training")


def load_cameras_json(path: str | Path) -> list[Camera]:
    """All cameras of a 3DGS training ``cameras.json`` (list of {width, height, fx, fy, position, rotation}).

    Read like any input: size-capped before reading, strict JSON (no NaN/Infinity, no absurd integer literals or
    nesting), every field type- and range-checked; any problem is one ``CamerasFileError`` line (exit 3).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CAMERAS_FILE_BYTES:
            raise CamerasFileError(f"{path} is {size} bytes; a cameras.json over {MAX_CAMERAS_FILE_BYTES} bytes "
                                   "is not plausible")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CamerasFileError(f"cameras file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CamerasFileError(f"cannot read cameras file {path}: {error}") from None
    try:
        data = loads_strict(text)
    except JsonRefused as reason:
        raise CamerasFileError(f"{path} {reason}") from None
    if not isinstance(data, list) or not data:
        raise CamerasFileError(f"{path} must hold a non-empty JSON list of cameras (3DGS cameras.json)")
    if len(data) > MAX_TRAINING_CAMERAS:
        raise CamerasFileError(f"{path} lists {len(data)} cameras; more than {MAX_TRAINING_CAMERAS} is not plausible")
    return [_camera_from_3dgs_entry(entry, i, path) for i, entry in enumerate(data)]


def select_cameras(cameras: list[Camera], count: int) -> list[Camera]:
    """A deterministic, evenly spread subset of ``count`` cameras (ordered by name, then file order)."""
    ordered = sorted(cameras, key=lambda c: c.name)
    if count >= len(ordered):
        return ordered
    picks = np.round(np.linspace(0, len(ordered) - 1, count)).astype(int)
    return [ordered[i] for i in picks]


def find_cameras_json(scene_path: str | Path) -> Path | None:
    """A ``cameras.json`` beside the scene file (or inside it, for a SOG folder), if there is one."""
    scene_path = Path(scene_path)
    folder = scene_path if scene_path.is_dir() else scene_path.parent
    candidate = folder / "cameras.json"
    return candidate if candidate.is_file() else None
