"""The reference splat renderer: standard 3D Gaussian Splatting image formation in plain PyTorch.

Same logic on CPU and CUDA, float32, deterministic. Steps (as in the 3DGS reference rasterizer):

1. world -> camera (OpenCV frame), cull splats nearer than 0.2, never-visible ones (opacity < 1/255) and
   non-finite ones;
2. project each 3D covariance to 2D through the perspective Jacobian (view-frustum-clamped as in 3DGS),
   add the 0.3 px low-pass, invert to a conic, radius = ceil(3 sigma of the major axis);
3. colour from SH along the view direction (+0.5, clamped at 0);
4. assign splats to the 16x16 tiles their radius box touches; sort (tile, depth) pairs with one int64 key (the
   PyTorch compositor works on finer tiles, ``torch_tile``, with the same picture: see ``fine_box``);
5. composite each tile front to back, vectorized over the pixels of a chunk of tiles and a block of depth
   layers: alpha = min(0.99, opacity * exp(power)), alphas under 1/255 skipped, a splat that would bring the
   transmittance under 1e-4 stops the pixel (and is not blended), background added with the final T. A tile's
   run longer than 4096 splats is cut into segments blended side by side (``segments.py``).

Memory is bounded twice: tile rows are grouped into bands holding at most ``max_pairs`` splat-tile pairs,
and compositing touches at most ``max_elements`` (tile pixel x layer) values at a time. On CUDA, step 5 runs as
Triton kernels instead (``composite_triton``, bench/RESULTS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sogs_compressor.compute_policy import triton_compositor
from sogs_compressor.render import segments
from sogs_compressor.render.camera import Camera, check_size
from sogs_compressor.render.errors import NothingVisibleError
from sogs_compressor.render.segments import cut_runs, starting_transmittance
from sogs_compressor.render.sh import sh_to_color
from sogs_compressor.splats import COLUMNS, SplatSet
from sogs_compressor.splats_torch import SplatTensors, rotation_matrices

NEAR_PLANE = 0.2
LOW_PASS = 0.3
ALPHA_CAP = 0.99
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4
TILE = 16
FRUSTUM_SLACK = 1.3  # the Jacobian is evaluated at most 30 % outside the field of view (3DGS)
FINE_TILE = 4
"""Tile side of the PyTorch compositor on a CPU (``torch_tile``)."""
FINE_TILE_GPU = 8
"""The same on a GPU without the Triton kernel (4 was as fast, with twice the pairs to sort and hold)."""
MAX_LAYERS = 64
"""Depth layers of a tile the PyTorch compositor blends per step (at most)."""
_BELOW_ALPHA_MIN = float(np.nextafter(np.float32(ALPHA_MIN), np.float32(0.0)))
"""The float32 just below ALPHA_MIN: ``threshold`` keeps values above its threshold, the rule keeps >= ALPHA_MIN."""
POWER_FLOOR = -30.0
"""Lowest exponent the PyTorch compositor takes exp of: exp(-30) = 9e-14 is far below ALPHA_MIN."""
FINE_MARGIN_PX = 0.05
FINE_SLACK = 0.01
"""Slack added to the extent where a splat's alpha reaches 1/255, against float rounding (``fine_box``): 1 % of
it plus ``FINE_MARGIN_PX`` pixels (rounding grows with the splat's size and elongation)."""

RENDERER_SETTINGS = {
    "renderer": "sogs-compressor reference rasterizer (3DGS image formation, PyTorch)",
    "near_plane": NEAR_PLANE,
    "low_pass_px": LOW_PASS,
    "alpha_cap": ALPHA_CAP,
    "alpha_min": round(ALPHA_MIN, 6),
    "transmittance_stop": T_MIN,
    "tile_px": TILE,
    "sigma_cutoff": 3,
}


@dataclass
class GaussianTensors:
    """Splats on a device, ready to render from any camera (prepare once, render many views)."""

    means: torch.Tensor  # (N, 3)
    cov3d: torch.Tensor  # (N, 3, 3)
    opacity: torch.Tensor  # (N,)
    f_dc: torch.Tensor  # (N, 3)
    f_rest: torch.Tensor  # (N, 3K) channel-major
    antialiased: bool = False

    @property
    def count(self) -> int:
        return int(self.means.shape[0])

    @property
    def device(self) -> torch.device:
        return self.means.device


@dataclass
class RenderResult:
    """``image`` (H, W, 3) in [0, 1] with the background blended in; ``alpha`` (H, W) = 1 - final T."""

    image: torch.Tensor
    alpha: torch.Tensor
    visible: int
    pairs: int


def quaternions_to_matrices(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions (w, x, y, z), any length > 0 -> (N, 3, 3) rotation matrices."""
    return rotation_matrices(torch.nn.functional.normalize(q, dim=-1))


def covariances(log_scales: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Sigma = R S S^T R^T with S = diag(exp(log_scales)); a -inf log scale (2DGS) gives a flat splat."""
    m = quaternions_to_matrices(rotations) * torch.exp(log_scales).unsqueeze(1)
    return m @ m.transpose(1, 2)


def renderable_mask(splats: SplatSet) -> np.ndarray:
    """Splats that can show up at all: finite values (log scales may be -inf), opacity >= 1/255, a rotation."""
    finite = np.all(np.isfinite(splats.positions), axis=1)
    finite &= np.all(np.isfinite(splats.rotations), axis=1) & (np.abs(splats.rotations).sum(axis=1) > 0)
    finite &= ~np.any(np.isnan(splats.log_scales) | (splats.log_scales == np.inf), axis=1)
    finite &= np.all(np.isfinite(splats.f_dc), axis=1) & np.all(np.isfinite(splats.f_rest), axis=1)
    finite &= ~np.isnan(splats.opacity_logits)
    with np.errstate(over="ignore"):
        opacity = 1.0 / (1.0 + np.exp(-splats.opacity_logits.astype(np.float64)))
    return finite & (opacity >= ALPHA_MIN)


def renderable_mask_torch(splats: SplatTensors) -> torch.Tensor:
    """``renderable_mask`` of splats already on a device (same rule; the opacity in float64 like the host's)."""
    finite = torch.isfinite(splats.positions).all(dim=1)
    finite &= torch.isfinite(splats.rotations).all(dim=1) & (splats.rotations.abs().sum(dim=1) > 0)
    finite &= ~(torch.isnan(splats.log_scales) | (splats.log_scales == math.inf)).any(dim=1)
    finite &= torch.isfinite(splats.f_dc).all(dim=1) & torch.isfinite(splats.f_rest).all(dim=1)
    finite &= ~torch.isnan(splats.opacity_logits)
    opacity = torch.sigmoid(splats.opacity_logits.double())
    return finite & (opacity >= ALPHA_MIN)


def prepare(splats: SplatSet | SplatTensors, device: torch.device | str = "cpu") -> GaussianTensors:
    """Move the renderable splats to ``device`` as float32 tensors with 3D covariances precomputed.

    A host ``SplatSet`` is uploaded and filtered there; ``SplatTensors`` are filtered where they are (and moved
    to ``device`` if it differs), so a scene decoded on the GPU never goes back to the host.
    """
    if isinstance(splats, SplatTensors):
        keep = renderable_mask_torch(splats)
        subset = splats if bool(keep.all()) else splats.select(keep)
        columns = {name: getattr(subset, name).to(device, torch.float32) for name in COLUMNS}
    else:
        keep = renderable_mask(splats)
        subset = splats.take(np.flatnonzero(keep)) if not keep.all() else splats
        columns = {name: torch.from_numpy(np.ascontiguousarray(getattr(subset, name), dtype=np.float32)).to(device)
                   for name in COLUMNS}
    return GaussianTensors(
        means=columns["positions"],
        cov3d=covariances(columns["log_scales"], columns["rotations"]),
        opacity=torch.sigmoid(columns["opacity_logits"]),
        f_dc=columns["f_dc"],
        f_rest=columns["f_rest"],
        antialiased=splats.model == "antialiased",
    )


@dataclass
class _Projected:
    """Per visible splat: pixel-space mean, conic (a, b, c), opacity, colour, depth, tile box."""

    mean2d: torch.Tensor
    conic: torch.Tensor
    opacity: torch.Tensor
    color: torch.Tensor
    depth: torch.Tensor
    box: torch.Tensor  # (M, 4) int64: x0, y0, x1, y1 tiles, [x0, x1) x [y0, y1)


def project(g: GaussianTensors, camera: Camera, tile: int = TILE) -> _Projected:
    """Steps 1-3: camera transform, EWA projection with low-pass, conic, tile box, SH colour.

    The box is in tiles of ``tile`` pixels (``TILE`` or a divisor of it: ``fine_box``)."""
    device = g.device
    rot = torch.tensor(camera.rotation, dtype=torch.float32, device=device)
    trans = torch.tensor(camera.translation, dtype=torch.float32, device=device)
    p = g.means @ rot.T + trans
    idx = _chosen(p[:, 2] > NEAR_PLANE)
    p = _rows(p, idx)
    x, y, z = p.unbind(-1)
    fx, fy, cx, cy, w, h = camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height
    lim_x_pos, lim_x_neg = (w - cx) / fx + 0.3 * w / (2 * fx), cx / fx + 0.3 * w / (2 * fx)
    lim_y_pos, lim_y_neg = (h - cy) / fy + 0.3 * h / (2 * fy), cy / fy + 0.3 * h / (2 * fy)
    tx = (x / z).clamp(-lim_x_neg, lim_x_pos) * z
    ty = (y / z).clamp(-lim_y_neg, lim_y_pos) * z
    # 2D covariance T Sigma T^T with T = J R, J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]], written out per
    # splat: millions of 2x3 @ 3x3 @ 3x2 products as batched matrix products are far slower than these sums
    t0 = (fx / z)[:, None] * rot[0] + (-fx * tx / (z * z))[:, None] * rot[2]  # (M, 3): first row of T
    t1 = (fy / z)[:, None] * rot[1] + (-fy * ty / (z * z))[:, None] * rot[2]
    sigma = _rows(g.cov3d, idx)
    s_t0 = _dot3(sigma, t0.unsqueeze(1))  # Sigma t0
    a = _dot3(t0, s_t0) + LOW_PASS
    b = _dot3(t1, s_t0)
    c = _dot3(t1, _dot3(sigma, t1.unsqueeze(1))) + LOW_PASS
    del sigma, s_t0
    det = a * c - b * b
    opacity = _rows(g.opacity, idx)
    if g.antialiased:  # Mip-Splatting: keep the splat's energy when the low-pass widens it
        det_raw = (a - LOW_PASS) * (c - LOW_PASS) - b * b
        opacity = opacity * torch.sqrt((det_raw / det).clamp_min(0.0))
    mid = 0.5 * (a + c)
    lambda1 = mid + torch.sqrt((mid * mid - det).clamp_min(0.1))
    radius = torch.ceil(3.0 * torch.sqrt(lambda1))
    u, v = fx * x / z + cx, fy * y / z + cy
    grid_x, grid_y = math.ceil(w / TILE), math.ceil(h / TILE)
    # tile box as in 3DGS getRect (its pixel centres sit at integers, ours at +0.5)
    box = torch.stack(
        [
            torch.floor((u - 0.5 - radius) / TILE).clamp(0, grid_x),
            torch.floor((v - 0.5 - radius) / TILE).clamp(0, grid_y),
            torch.floor((u - 0.5 + radius + TILE - 1) / TILE).clamp(0, grid_x),
            torch.floor((v - 0.5 + radius + TILE - 1) / TILE).clamp(0, grid_y),
        ],
        dim=-1,
    ).to(torch.int64)
    ok = (det > 0) & (box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1]) & (opacity >= ALPHA_MIN)
    ok &= torch.isfinite(u) & torch.isfinite(v) & torch.isfinite(det)
    sel = _chosen(ok)
    idx = sel if idx is None else _rows(idx, sel)
    det, a, b, c, box, u, v, z, opacity = (_rows(t, sel) for t in (det, a, b, c, box, u, v, z, opacity))
    if tile != TILE:  # the same splats count as visible; some may touch no fine tile
        box = fine_box(box, u, v, a, c, opacity, tile, math.ceil(w / tile), math.ceil(h / tile))
    centre = torch.tensor(camera.center, dtype=torch.float32, device=device)
    directions = torch.nn.functional.normalize(_rows(g.means, idx) - centre, dim=-1)
    return _Projected(
        mean2d=torch.stack([u, v], dim=-1),
        conic=torch.stack([c / det, -b / det, a / det], dim=-1),
        opacity=opacity,
        color=sh_to_color(_rows(g.f_dc, idx), _rows(g.f_rest, idx), directions),
        depth=z,
        box=box,
    )


def _dot3(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(x * y).sum(dim=-1)`` over a last dimension of 3, as the sums ``x0 y0 + x1 y1 + x2 y2`` in that order
    (the same float32 values as that reduction, which is several times slower over millions of rows of 3)."""
    return x[..., 0] * y[..., 0] + x[..., 1] * y[..., 1] + x[..., 2] * y[..., 2]


def _chosen(mask: torch.Tensor) -> torch.Tensor | None:
    """The indices where ``mask`` holds, or None when it holds everywhere (an orbit view sees every splat: its
    gathers would only copy)."""
    return None if bool(mask.all()) else torch.nonzero(mask).squeeze(1)


def _rows(x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    """``x[idx]``, or ``x`` itself for ``idx`` None (``_chosen``)."""
    return x if idx is None else x[idx]


def fine_box(box: torch.Tensor, u: torch.Tensor, v: torch.Tensor, a: torch.Tensor, c: torch.Tensor,
             opacity: torch.Tensor, tile: int, grid_x: int, grid_y: int) -> torch.Tensor:
    """The 16-pixel tile ``box`` in tiles of ``tile`` pixels, cut to the tiles holding a pixel centre where the
    splat's alpha can reach 1/255.

    A splat adds to a pixel of a tile its box touches only where opacity x exp(-d'Cd/2) >= 1/255, the ellipse
    d'Cd <= 2 ln(255 opacity), whose bounding box has half-sides sqrt(k a) and sqrt(k c) (``a``, ``c`` the 2D
    covariance's diagonal). Finer tiles inside the 16-pixel box but outside that ellipse hold only pixels the
    splat adds nothing to, so dropping them keeps the picture of 16-pixel tiles while a sub-pixel splat costs
    its few fine tiles instead of 256 pixels (``bench/RESULTS.md``, "CPU renders"). The fine tiles are those of
    the first and last pixel centres (at +0.5) inside the half-sides, widened by ``FINE_SLACK`` against float
    rounding (a whole pixel of slack, before, gave twice the pairs: bench/RESULTS.md, "Session 17").
    """
    if TILE % tile:
        raise ValueError(f"tile {tile} must divide {TILE}")
    k = 2.0 * torch.log((opacity * 255.0).clamp_min(1.0))
    half_x = torch.sqrt(k * a) * (1.0 + FINE_SLACK) + FINE_MARGIN_PX
    half_y = torch.sqrt(k * c) * (1.0 + FINE_SLACK) + FINE_MARGIN_PX
    per = TILE // tile
    fine = torch.stack(
        [
            torch.maximum(torch.floor(torch.ceil(u - 0.5 - half_x) / tile).clamp(0, grid_x), box[:, 0] * per),
            torch.maximum(torch.floor(torch.ceil(v - 0.5 - half_y) / tile).clamp(0, grid_y), box[:, 1] * per),
            torch.minimum(torch.floor(torch.floor(u - 0.5 + half_x) / tile + 1).clamp(0, grid_x), box[:, 2] * per),
            torch.minimum(torch.floor(torch.floor(v - 0.5 + half_y) / tile + 1).clamp(0, grid_y), box[:, 3] * per),
        ],
        dim=-1,
    )
    fine = torch.nan_to_num(fine, nan=0.0).to(torch.int64)
    fine[:, 2:] = torch.maximum(fine[:, 2:], fine[:, :2])  # an empty box: no tile
    return fine


def _row_bands(box: torch.Tensor, grid_y: int, max_pairs: int) -> list[tuple[int, int]]:
    """Group tile rows into bands of at most ``max_pairs`` splat-tile pairs (a single row may exceed it)."""
    width = box[:, 2] - box[:, 0]
    per_row = torch.zeros(grid_y + 1, dtype=torch.int64, device=box.device)
    per_row.index_add_(0, box[:, 1], width)
    per_row.index_add_(0, box[:, 3], -width)
    counts = torch.cumsum(per_row, 0)[:grid_y].tolist()
    bands, start, total = [], 0, 0
    for row, n in enumerate(counts):
        if total and total + n > max_pairs:
            bands.append((start, row))
            start, total = row, 0
        total += n
    bands.append((start, grid_y))
    return bands


def _sorted_pairs(proj: _Projected, row0: int, row1: int, grid_x: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(tile id, splat index) pairs of tile rows [row0, row1), sorted by tile then depth (one int64 key)."""
    box = proj.box
    y0, y1 = box[:, 1].clamp_min(row0), box[:, 3].clamp_max(row1)
    nx = box[:, 2] - box[:, 0]
    counts = nx * (y1 - y0).clamp_min(0)
    splat = torch.repeat_interleave(torch.arange(counts.shape[0], device=box.device), counts)

    def of_pair(per_splat: torch.Tensor) -> torch.Tensor:
        """Each pair's splat's value (index_select: several times faster than indexing on a CPU)."""
        return per_splat.index_select(0, splat)

    offset = torch.arange(splat.shape[0], device=box.device) - of_pair(torch.cumsum(counts, 0) - counts)
    width = of_pair(nx)
    row = offset // width
    tile = (of_pair(y0) + row) * grid_x + of_pair(box[:, 0]) + (offset - row * width)
    depth_bits = proj.depth.view(torch.int32).to(torch.int64)  # positive floats sort like their bits
    key = (tile << 32) | of_pair(depth_bits)
    key, order = torch.sort(key, stable=True)
    return key >> 32, splat.index_select(0, order)


def _splat_table(proj: _Projected) -> torch.Tensor:
    """(M + 1, 9) per-splat rows [u, v, conic a, b, c, log opacity, r, g, b]; the last row is a never-visible
    padding splat (log opacity -inf) that layers past a tile's end point at."""
    rows = torch.cat(
        [proj.mean2d, proj.conic, torch.log(proj.opacity).unsqueeze(1), proj.color], dim=1
    )
    pad = torch.zeros(1, rows.shape[1], device=rows.device)
    pad[0, 5] = -math.inf
    return torch.cat([rows, pad])


def _layer_alpha(table: torch.Tensor, s: torch.Tensor, origin: torch.Tensor, tile: int = TILE,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Alpha (T, L, P) of layers ``s`` (T, L splat rows) over ``tile``-pixel tiles at pixel ``origin`` (T, 2), and
    the rows."""
    rows = table.index_select(0, s.reshape(-1)).reshape(*s.shape, table.shape[1])  # (T, L, 9); faster than table[s]
    local = torch.arange(tile, device=s.device, dtype=torch.float32) + 0.5
    dx = local + (origin[:, 0:1, None] - rows[..., 0:1])  # (T, L, tile): pixel columns
    dy = local + (origin[:, 1:2, None] - rows[..., 1:2])  # pixel rows
    # power = -a/2 dx^2 - b dx dy - c/2 dy^2 (+ log opacity), separable except the cross term
    px = (-0.5 * rows[..., 2:3]) * dx * dx + rows[..., 5:6]
    py = (-0.5 * rows[..., 4:5]) * dy * dy
    power = torch.addcmul(
        px.unsqueeze(-2) + py.unsqueeze(-1), (rows[..., 3:4] * dy).unsqueeze(-1), dx.unsqueeze(-2), value=-1.0
    ).flatten(-2)  # (T, L, P) with P = y * tile + x
    # most powers are far below ln(1/255); exp of them underflows to subnormals, 20x slower on an x86 core than
    # exp of a normal result (bench/RESULTS.md, "Session 17"). Raised to POWER_FLOOR they still give alphas that
    # the threshold below sets to 0, so the alphas are the same.
    alpha = power.clamp_min_(POWER_FLOOR).exp_().clamp_max_(ALPHA_CAP)
    # alpha >= ALPHA_MIN kept, the rest 0, in one pass instead of a comparison and a where. Those gave 0 for a NaN
    # where threshold keeps it; there is none: the conic's eigenvalues are at most 1 / LOW_PASS, the offsets finite.
    return torch.nn.functional.threshold_(alpha, _BELOW_ALPHA_MIN, 0.0), rows


def _blend_layers(
    table: torch.Tensor, s: torch.Tensor, origin: torch.Tensor, t_run: torch.Tensor, weights: bool = True,
    tile: int = TILE,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Blend layers ``s`` (T, L splat rows) over tiles at pixel ``origin`` (T, 2) with transmittance ``t_run``
    (T, P). Returns (T, P, 4): colour and total weight added (None without ``weights``); and the new running
    transmittance (T, P)."""
    alpha, rows = _layer_alpha(table, s, origin, tile)
    after = torch.cumprod(1.0 - alpha, dim=1).mul_(t_run.unsqueeze(1))  # T after each layer
    if not weights:
        return None, after[:, -1]
    weight = alpha  # alpha x the transmittance before each layer, in place
    weight[:, 0].mul_(t_run)
    weight[:, 1:].mul_(after[:, :-1])
    if bool((after[:, -1] < T_MIN).any()):  # a pixel stops here: nothing from its stopping splat on
        weight.masked_fill_(after < T_MIN, 0.0)
    rgb1 = torch.cat([rows[..., 6:9], torch.ones_like(rows[..., :1])], dim=-1)  # (T, L, 4)
    return torch.einsum("tlp,tlc->tpc", weight, rgb1), after[:, -1]


def _composite_tiles(
    table: torch.Tensor,
    tiles: torch.Tensor,
    starts: torch.Tensor,
    counts: torch.Tensor,
    splat_of_pair: torch.Tensor,
    grid_x: int,
    max_layers: int,
    t_start: torch.Tensor | None = None,
    weights: bool = True,
    tile: int = TILE,
) -> torch.Tensor:
    """Front-to-back blend of a chunk of runs of tiles' splats, from transmittance ``t_start`` (T, P; default 1),
    P = ``tile``^2: (T, P, 4) = colour without background, total weight; without ``weights`` the final
    transmittance (T, P)."""
    device = tiles.device
    origin = torch.stack([tiles % grid_x, tiles // grid_x], dim=1).to(torch.float32) * tile
    acc = torch.zeros(tiles.shape[0], tile * tile, 4, device=device)
    # the running transmittance includes the stopping splat
    t_run = torch.ones(tiles.shape[0], tile * tile, device=device) if t_start is None else t_start.clone()
    pad = table.shape[0] - 1
    active = torch.nonzero((counts > 0) & (t_run >= T_MIN).any(dim=1)).reshape(-1)
    layer0 = 0
    while active.numel():
        layers = torch.arange(layer0, layer0 + max_layers, device=device)
        start, count = starts[active], counts[active]
        pair = start.unsqueeze(1) + layers
        s = torch.where(layers < count.unsqueeze(1), splat_of_pair[pair.clamp_max(splat_of_pair.shape[0] - 1)], pad)
        added, t_new = _blend_layers(table, s, origin[active], t_run[active], weights, tile)
        if weights:
            acc[active] += added
        t_run[active] = t_new
        layer0 += max_layers
        # keep the tiles with layers left and a pixel still seeing through
        alive = (count > layer0) & (t_new >= T_MIN).any(dim=1)
        active = active[alive]
    return acc if weights else t_run


def _composite_torch(
    table: torch.Tensor, busy: torch.Tensor, starts: torch.Tensor, counts: torch.Tensor,
    splat_of_pair: torch.Tensor, grid_x: int, max_elements: int, tile: int = TILE,
) -> torch.Tensor:
    """(T, tile^2, 4) for the ``busy`` tiles: runs cut into segments (``segments.py``), the segments of similar
    length blended a chunk at a time, at most ``max_elements`` tile-pixel x layer values per step."""
    pixels = tile * tile
    cut = cut_runs(busy, starts, counts, segment_length(busy.device))

    def chunked(units: torch.Tensor, run) -> None:
        """``run(chunk, layers)`` over ``units`` (segment ids), longest first, in chunks of similar length."""
        units = units[torch.sort(cut.counts[units], descending=True, stable=True).indices]
        unit_counts = cut.counts[units].tolist()
        i = 0
        while i < len(unit_counts):
            layers = max(1, min(MAX_LAYERS, unit_counts[i]))
            n_units = max(1, max_elements // (layers * pixels))
            run(units[i:i + n_units], layers)
            i += n_units

    transmit = torch.ones(cut.count, pixels, device=busy.device)

    def transmittance(chunk: torch.Tensor, layers: int) -> None:
        transmit[chunk] = _composite_tiles(table, cut.tiles[chunk], cut.starts[chunk], cut.counts[chunk],
                                           splat_of_pair, grid_x, layers, weights=False, tile=tile)

    chunked(cut.followed, transmittance)
    t_start = starting_transmittance(cut, transmit)
    acc = torch.zeros(cut.count, pixels, 4, device=busy.device)

    def blend(chunk: torch.Tensor, layers: int) -> None:
        acc[chunk] = _composite_tiles(table, cut.tiles[chunk], cut.starts[chunk], cut.counts[chunk], splat_of_pair,
                                      grid_x, layers, t_start[chunk], tile=tile)

    chunked(torch.arange(cut.count, device=busy.device), blend)
    if cut.count == busy.shape[0]:
        return acc
    return torch.zeros(busy.shape[0], pixels, 4, device=busy.device).index_add_(0, cut.owner, acc)


COMPOSITORS = ("auto", "torch", "triton")


def default_budget(device: torch.device) -> tuple[int, int]:
    """(max pairs per band, max tile-pixel x layer elements per compositing step) for ``device``."""
    if device.type == "cuda":
        return 1 << 25, 1 << 25
    return 1 << 22, 1 << 20


def segment_length(device: torch.device) -> int:
    """Longest run the PyTorch compositor blends as one unit on ``device``: on a GPU a long tile costs thousands of
    small sequential steps, so runs are cut (``segments.SEGMENT``); on a CPU the work is arithmetic, not steps,
    and the extra transmittance pass only costs (measured: bench/RESULTS.md, "Long tiles")."""
    return segments.SEGMENT if device.type == "cuda" else 1 << 62


def torch_tile(device: torch.device) -> int:
    """Tile side of the PyTorch compositor on ``device``: on a CPU every tile pixel x splat costs arithmetic, and
    most splats of a large scene cover a few pixels, so finer tiles (``fine_box``) cut the work several times
    over; on a GPU without the Triton kernel they save fewer steps (bench/RESULTS.md, "CPU renders")."""
    return FINE_TILE if device.type == "cpu" else FINE_TILE_GPU


def render(
    g: GaussianTensors,
    camera: Camera,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    *,
    allow_empty: bool = False,
    max_pairs: int | None = None,
    max_elements: int | None = None,
    compositor: str = "auto",
) -> RenderResult:
    """Render one view. Raises NothingVisibleError when no splat lands in the picture (unless allowed).

    ``compositor``: ``torch`` (this module's), ``triton`` (``composite_triton``: one kernel, CUDA or the Triton
    interpreter) or ``auto`` (Triton on a CUDA device it supports, else torch).
    """
    check_size(camera.width, camera.height)
    device = g.device
    if compositor not in COMPOSITORS:
        raise ValueError(f"compositor must be one of {COMPOSITORS}, not {compositor!r}")
    fused = triton_compositor(compositor, device)
    default_pairs, default_elements = default_budget(device)
    max_pairs = max_pairs or default_pairs
    max_elements = max_elements or default_elements
    tile = TILE if fused else torch_tile(device)
    grid_x, grid_y = math.ceil(camera.width / tile), math.ceil(camera.height / tile)
    bg = torch.tensor(background, dtype=torch.float32, device=device)
    canvas = torch.zeros(grid_y * grid_x, tile * tile, 3, device=device)
    t_canvas = torch.ones(grid_y * grid_x, tile * tile, device=device)
    proj = project(g, camera, tile) if g.count else None
    visible = 0 if proj is None else int(proj.depth.shape[0])
    if visible == 0 and not allow_empty:
        raise NothingVisibleError(
            f"nothing to render from camera {camera.name or '(unnamed)'}: all {g.count} renderable splats are "
            "behind it (nearer than 0.2), outside the picture or transparent; check the camera and --up"
        )
    pairs_total = 0
    if visible:
        table = _splat_table(proj)
        for row0, row1 in _row_bands(proj.box, grid_y, max_pairs):
            tile_of_pair, splat_of_pair = _sorted_pairs(proj, row0, row1, grid_x)
            pairs_total += int(tile_of_pair.shape[0])
            if tile_of_pair.numel() == 0:
                continue
            per_tile = torch.bincount(tile_of_pair, minlength=grid_x * grid_y)
            first = torch.cumsum(per_tile, 0) - per_tile
            busy = torch.nonzero(per_tile).squeeze(1)
            if fused:  # every busy tile of the band in one launch
                from sogs_compressor.render.composite_triton import composite_tiles_triton

                acc = composite_tiles_triton(table, busy, first[busy], per_tile[busy], splat_of_pair, grid_x,
                                             ALPHA_CAP, ALPHA_MIN, T_MIN)
                canvas[busy] = acc[..., :3]
                t_canvas[busy] = 1.0 - acc[..., 3]
                continue
            acc = _composite_torch(table, busy, first[busy], per_tile[busy], splat_of_pair, grid_x, max_elements,
                                   tile)
            canvas[busy] = acc[..., :3]
            t_canvas[busy] = 1.0 - acc[..., 3]
    canvas = canvas + t_canvas.unsqueeze(-1) * bg

    def untile(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(grid_y, grid_x, tile, tile, *x.shape[2:]).transpose(1, 2)
        return x.reshape(grid_y * tile, grid_x * tile, *x.shape[4:])[: camera.height, : camera.width]

    return RenderResult(
        image=untile(canvas).clamp(0.0, 1.0),
        alpha=untile(1.0 - t_canvas),
        visible=visible,
        pairs=pairs_total,
    )


def render_splats(
    splats: SplatSet | SplatTensors,
    cameras: list[Camera],
    device: torch.device | str = "cpu",
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    allow_empty: bool = False,
) -> list[RenderResult]:
    """Prepare once and render every camera."""
    g = prepare(splats, device)
    return [render(g, cam, background, allow_empty=allow_empty) for cam in cameras]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(H, W, 3) float image in [0, 1] -> uint8 numpy array (round to nearest)."""
    return (image.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
