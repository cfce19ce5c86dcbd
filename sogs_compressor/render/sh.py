"""Spherical-harmonics colour, degree 0-3, with the constants and sign conventions of the 3DGS reference.

The coefficients come as in ``SplatSet``: ``f_dc`` (N, 3) and ``f_rest`` (N, 3*K) channel-major (all R
coefficients, then G, then B). Colour = SH_C0 * f_dc + higher bands at the unit view direction, + 0.5,
clamped at 0 (not at 1: the rasterizer blends unclamped colours, as the reference does).
"""

from __future__ import annotations

import torch

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)

_COEFFS_PER_DEGREE = (0, 3, 8, 15)


def sh_basis(directions: torch.Tensor, degree: int) -> torch.Tensor:
    """Real SH basis (N, (degree+1)^2) at unit ``directions`` (N, 3), 3DGS ordering and signs."""
    x, y, z = directions.unbind(-1)
    terms = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        terms += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        terms += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        terms += [
            SH_C3[0] * y * (3.0 * xx - yy),
            SH_C3[1] * xy * z,
            SH_C3[2] * y * (4.0 * zz - xx - yy),
            SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            SH_C3[4] * x * (4.0 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(terms, dim=-1)


def degree_for_rest(rest_columns: int) -> int:
    """SH degree for an ``f_rest`` width of 0/9/24/45 columns."""
    for degree, k in enumerate(_COEFFS_PER_DEGREE):
        if 3 * k == rest_columns:
            return degree
    raise ValueError(f"f_rest width {rest_columns} is not 0, 9, 24 or 45")


def sh_to_color(f_dc: torch.Tensor, f_rest: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """RGB (N, 3) seen along unit ``directions`` (N, 3): SH up to the degree ``f_rest`` holds, +0.5, min 0."""
    degree = degree_for_rest(f_rest.shape[1])
    k = _COEFFS_PER_DEGREE[degree]
    color = SH_C0 * f_dc + 0.5
    if k:  # an elementwise product and sum: as a batched matrix product, millions of 3 x K rows are far slower
        basis = sh_basis(directions, degree)[:, None, 1:]  # (N, 1, K)
        color = color + (f_rest.reshape(f_dc.shape[0], 3, k) * basis).sum(dim=-1)
    return color.clamp_min(0.0)
