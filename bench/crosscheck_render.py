"""Cross-check the tiled renderer against an independent, dense formulation of the same image model.

gsplat is not available on the project's machines, so the second renderer here shares no code with
``sogs_compressor.render.rasterize``: it projects in float64 with its own Jacobian/covariance code, evaluates
**every** splat at **every** pixel (no tiles, no 3-sigma box, one global depth sort) and composites with an
explicit running transmittance over splat blocks. What it does not model is the tiled renderers' 3-sigma tile
cut-off, so small differences at the edges of large faint splats are expected; everything else (projection,
low-pass, SH colour, alpha cap/skip, T stop, background) must agree. Prints PSNR between the two per view.

    python bench/crosscheck_render.py ../shared/data/real/flowers_3_0/meta.json --size 128 --views 4
    python bench/crosscheck_render.py SCENE.ply --device cuda --size 512 --views 8     # on the GPU machine
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from sogs_compressor.device import resolve_device
from sogs_compressor.read import read_scene
from sogs_compressor.render.camera import Camera, orbit_cameras
from sogs_compressor.render.metrics import psnr, ssim
from sogs_compressor.render.rasterize import prepare, render
from sogs_compressor.splats import SplatSet

C0, C1 = 0.28209479177387814, 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
      1.445305721320277, -0.5900435899266435)


def dense_colour(s: SplatSet, dirs: torch.Tensor, dev) -> torch.Tensor:
    """SH colour written out band by band, coefficient by coefficient (float64)."""
    k = s.coeffs_per_channel
    rest = torch.from_numpy(s.f_rest.astype(np.float64)).to(dev).reshape(-1, 3, k)
    x, y, z = dirs[:, 0:1], dirs[:, 1:2], dirs[:, 2:3]
    out = C0 * torch.from_numpy(s.f_dc.astype(np.float64)).to(dev)
    terms = []
    if s.sh_degree >= 1:
        terms += [-C1 * y, C1 * z, -C1 * x]
    if s.sh_degree >= 2:
        terms += [C2[0] * x * y, C2[1] * y * z, C2[2] * (2 * z * z - x * x - y * y), C2[3] * x * z,
                  C2[4] * (x * x - y * y)]
    if s.sh_degree >= 3:
        terms += [C3[0] * y * (3 * x * x - y * y), C3[1] * x * y * z, C3[2] * y * (4 * z * z - x * x - y * y),
                  C3[3] * z * (2 * z * z - 3 * x * x - 3 * y * y), C3[4] * x * (4 * z * z - x * x - y * y),
                  C3[5] * z * (x * x - y * y), C3[6] * x * (x * x - 3 * y * y)]
    for j, term in enumerate(terms):
        out = out + term * rest[:, :, j]
    return (out + 0.5).clamp_min(0)


def dense_render(s: SplatSet, cam: Camera, dev, pixel_block: int = 4096, splat_block: int = 2048) -> torch.Tensor:
    f64 = torch.float64
    pos = torch.from_numpy(s.positions.astype(np.float64)).to(dev)
    R = torch.tensor(cam.rotation, dtype=f64, device=dev)
    t = torch.tensor(cam.translation, dtype=f64, device=dev)
    pc = pos @ R.T + t
    opacity = torch.sigmoid(torch.from_numpy(s.opacity_logits.astype(np.float64)).to(dev))
    keep = (pc[:, 2] > 0.2) & torch.isfinite(pc).all(1) & (opacity >= 1 / 255)
    idx = torch.nonzero(keep).squeeze(1)
    pc, opacity = pc[idx], opacity[idx]
    q = torch.from_numpy(s.rotations.astype(np.float64)).to(dev)[idx]
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.T
    rot = torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                       2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                       2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1).reshape(-1, 3, 3)
    var = torch.exp(2 * torch.from_numpy(s.log_scales.astype(np.float64)).to(dev)[idx])
    sigma_cam = R @ (rot * var[:, None, :]) @ rot.transpose(1, 2) @ R.T
    X, Y, Z = pc.T
    lx, ly = 1.3 * cam.width / (2 * cam.fx), 1.3 * cam.height / (2 * cam.fy)
    tx, ty = (X / Z).clamp(-lx, lx), (Y / Z).clamp(-ly, ly)
    J = torch.zeros(len(idx), 2, 3, dtype=f64, device=dev)
    J[:, 0, 0], J[:, 0, 2] = cam.fx / Z, -cam.fx * tx / Z
    J[:, 1, 1], J[:, 1, 2] = cam.fy / Z, -cam.fy * ty / Z
    cov = J @ sigma_cam @ J.transpose(1, 2) + 0.3 * torch.eye(2, dtype=f64, device=dev)
    if s.model == "antialiased":
        opacity = opacity * torch.sqrt((torch.linalg.det(cov - 0.3 * torch.eye(2, dtype=f64, device=dev))
                                        / torch.linalg.det(cov)).clamp_min(0))
    conic = torch.linalg.inv(cov)
    mean = torch.stack([cam.fx * X / Z + cam.cx, cam.fy * Y / Z + cam.cy], 1)
    centre = torch.tensor(cam.center, dtype=f64, device=dev)
    d = pos[idx] - centre
    colour = dense_colour(s.take(idx.cpu().numpy()), d / d.norm(dim=1, keepdim=True), dev)
    order = torch.argsort(Z, stable=True)
    mean, conic, opacity, colour = mean[order], conic[order], opacity[order], colour[order]
    ys, xs = torch.meshgrid(torch.arange(cam.height, device=dev), torch.arange(cam.width, device=dev), indexing="ij")
    pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).to(f64) + 0.5
    image = torch.zeros(pix.shape[0], 3, dtype=f64, device=dev)
    for p0 in range(0, pix.shape[0], pixel_block):
        p = pix[p0:p0 + pixel_block]
        T = torch.ones(p.shape[0], dtype=f64, device=dev)
        rgb = torch.zeros(p.shape[0], 3, dtype=f64, device=dev)
        done = torch.zeros(p.shape[0], dtype=torch.bool, device=dev)
        for s0 in range(0, mean.shape[0], splat_block):
            dx = p[:, None, 0] - mean[None, s0:s0 + splat_block, 0]
            dy = p[:, None, 1] - mean[None, s0:s0 + splat_block, 1]
            cn = conic[s0:s0 + splat_block]
            power = -0.5 * (cn[:, 0, 0] * dx * dx + cn[:, 1, 1] * dy * dy) - cn[:, 0, 1] * dx * dy
            alpha = (opacity[s0:s0 + splat_block] * torch.exp(power)).clamp_max(0.99)
            alpha = torch.where(alpha >= 1 / 255, alpha, 0.0)
            after = T[:, None] * torch.cumprod(1 - alpha, 1)
            before = torch.cat([T[:, None], after[:, :-1]], 1)
            ok = (after >= 1e-4) & ~done[:, None]
            rgb += (torch.where(ok, alpha * before, 0.0)) @ colour[s0:s0 + splat_block]
            done |= (after < 1e-4).any(1)
            T = torch.where(done, T, after[:, -1])
            T = torch.minimum(T, torch.where(ok, after, 1.0).amin(1))
        image[p0:p0 + pixel_block] = rgb  # black background
    return image.reshape(cam.height, cam.width, 3).clamp(0, 1).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scene")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--device", default=None)
    parser.add_argument("--up", default="-y")
    args = parser.parse_args()
    dev = resolve_device(args.device)
    splats = read_scene(args.scene).splats
    cameras = orbit_cameras(splats.positions, args.views, args.size, args.size, args.up)
    g = prepare(splats, dev)
    rows = []
    for cam in cameras:
        t0 = time.perf_counter()
        tiled = render(g, cam).image
        t1 = time.perf_counter()
        dense = dense_render(splats, cam, dev)
        t2 = time.perf_counter()
        rows.append({"camera": cam.name, "psnr_db": round(psnr(tiled, dense), 2), "ssim": round(ssim(tiled, dense), 5),
                     "max_abs_diff": round(float((tiled - dense).abs().max()), 4),
                     "tiled_s": round(t1 - t0, 3), "dense_s": round(t2 - t1, 3)})
    print(json.dumps({"scene": args.scene, "splats": splats.count, "size": args.size, "device": str(dev),
                      "views": rows, "min_psnr_db": min(r["psnr_db"] for r in rows)}, indent=2))
    if min(r["psnr_db"] for r in rows) < 35 or not all(math.isfinite(r["psnr_db"]) for r in rows):
        raise SystemExit("cross-check PSNR under 35 dB: investigate")


if __name__ == "__main__":
    main()
