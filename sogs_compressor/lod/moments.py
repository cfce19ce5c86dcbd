"""Gaussian moments of splats and their moment-matched pair merges, batched in PyTorch (float64, any device).

A splat is a Gaussian with mean ``mu``, covariance ``Sigma = R diag(s^2) R^T`` and "ink" ``alpha x area`` (opacity
times the ellipsoid's surface area: how much it darkens the pictures it appears in). Merging splats ``i, j`` into
one keeps the pair's first and second moments: with ``p = w_i / (w_i + w_j)`` (w = ink),
``mu = p mu_i + q mu_j`` and ``Sigma = p Sigma_i + q Sigma_j + p q d d^T`` (``d = mu_j - mu_i``; the same as
``sum_k p_k (Sigma_k + (mu_k - mu)(mu_k - mu)^T)``). Everything is computed from log values so that zero-size,
huge and fully opaque splats stay finite.
"""

from __future__ import annotations

import math

import torch

from sogs_compressor.splats_torch import rotation_matrices

ELLIPSOID_P = 1.6075
"""Knud Thomsen's exponent: the ellipsoid surface area within ~1% for any axis ratio."""

LOG_SCALE_LIMIT = 60.0
"""Log scales are clamped to +-this before use (exp(120) variances stay far from float64 overflow)."""

OPACITY_LOGIT_LIMIT = 30.0
"""Input opacity logits are clamped to +-this (an infinite logit is a legitimate 0 or 1)."""

OUTPUT_LOGIT_LIMIT = 16.0
"""Merged opacity logits stay within +-this (alpha within 1e-7 of 0 or 1), as splat-transform's logit clamps."""


def log_ellipsoid_area(log_scales: torch.Tensor) -> torch.Tensor:
    """log of the surface area of the ellipsoid with semi-axes exp(log_scales), (..., 3) -> (...)."""
    lx, ly, lz = log_scales.unbind(-1)
    pairs = torch.stack([lx + ly, lx + lz, ly + lz], dim=-1) * ELLIPSOID_P
    return math.log(4.0 * math.pi) + (torch.logsumexp(pairs, dim=-1) - math.log(3.0)) / ELLIPSOID_P


def quaternion_matrices(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions (w, x, y, z), any length > 0 (zero -> identity) -> (N, 3, 3) rotations (columns = axes)."""
    norm = q.norm(dim=-1, keepdim=True)
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=q.dtype, device=q.device)
    return rotation_matrices(torch.where(norm > 0, q / norm.clamp_min(1e-300), identity))


def matrices_to_quaternions(m: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) proper rotations -> (N, 4) unit quaternions (w, x, y, z) with w >= 0 (Shepperd's method:
    each row uses the largest of w, x, y, z as the pivot, so no division by a small number)."""
    m00, m01, m02 = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    m10, m11, m12 = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    m20, m21, m22 = m[:, 2, 0], m[:, 2, 1], m[:, 2, 2]
    # 4 q_k^2 for each component: the largest is at least 1/4 of the sum 4, so its square root is >= 1.
    squares = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], 1)
    pivot = squares.argmax(dim=1)
    s = squares.gather(1, pivot.unsqueeze(1)).squeeze(1).clamp_min(1e-12).sqrt() * 2  # 4 |q_pivot|
    candidates = torch.stack(
        [
            torch.stack([s / 4, (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s], 1),
            torch.stack([(m21 - m12) / s, s / 4, (m01 + m10) / s, (m02 + m20) / s], 1),
            torch.stack([(m02 - m20) / s, (m01 + m10) / s, s / 4, (m12 + m21) / s], 1),
            torch.stack([(m10 - m01) / s, (m02 + m20) / s, (m12 + m21) / s, s / 4], 1),
        ],
        1,
    )
    q = candidates[torch.arange(m.shape[0], device=m.device), pivot]
    q = q / q.norm(dim=1, keepdim=True)
    return torch.where(q[:, :1] < 0, -q, q)


def covariances(log_scales: torch.Tensor, rotations: torch.Tensor, variance_floor: float) -> torch.Tensor:
    """(N, 3, 3) covariances R diag(max(s^2, floor)) R^T from log scales and (w, x, y, z) quaternions."""
    variances = torch.exp(2 * log_scales.clamp(-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT)).clamp_min(variance_floor)
    r = quaternion_matrices(rotations)
    return (r * variances.unsqueeze(1)) @ r.transpose(1, 2)


def log_ink(log_scales: torch.Tensor, opacity_logits: torch.Tensor) -> torch.Tensor:
    """log(opacity x surface area): the merge weight (splat-transform weighs its merges the same way)."""
    clamped = log_scales.clamp(-LOG_SCALE_LIMIT, LOG_SCALE_LIMIT)
    return torch.nn.functional.logsigmoid(opacity_logits.clamp(-OPACITY_LOGIT_LIMIT, OPACITY_LOGIT_LIMIT)) + \
        log_ellipsoid_area(clamped)


def determinants(m: torch.Tensor) -> torch.Tensor:
    """Determinants of (..., 3, 3) matrices by the explicit formula (deterministic, any device, any batch)."""
    return (
        m[..., 0, 0] * (m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1])
        - m[..., 0, 1] * (m[..., 1, 0] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 0])
        + m[..., 0, 2] * (m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0])
    )


def merged_covariance(p: torch.Tensor, cov_i: torch.Tensor, cov_j: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Covariance of the moment-matched pair: p Sigma_i + (1-p) Sigma_j + p (1-p) d d^T (broadcasting batch dims)."""
    q = 1 - p
    outer = delta.unsqueeze(-1) * delta.unsqueeze(-2)
    return p[..., None, None] * cov_i + q[..., None, None] * cov_j + (p * q)[..., None, None] * outer


JACOBI_SWEEPS = 5
"""Cyclic Jacobi sweeps (3 rotations each) per 3x3 eigendecomposition: the off-diagonal part shrinks
quadratically once small; on 20,000 random float64 covariances with axis scales spread over e^+-15, 3 sweeps
rebuilt them to 6e-7 of their largest entry and 4 to 3e-15 (rounding), so 5 leave one spare."""


def symmetric_eigh(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (N, 3) and eigenvectors (columns of (N, 3, 3)) of symmetric 3x3 matrices, by cyclic Jacobi
    rotations in plain elementwise tensor operations.

    Not ``torch.linalg.eigh``: on CUDA that calls cuSOLVER's batched solver, which failed with an internal error on
    262,144 matrices at once and (the suspected fixed ~8 GiB of the first GPU decimation runs) sizes its own
    workspace; this needs a few (N,) temporaries per entry, runs the same on any device and has no solver state.
    Eigenvalues are not sorted.
    """
    a = {(r, c): cov[:, r, c].clone() for r in range(3) for c in range(r, 3)}  # upper triangle

    def entry(r: int, c: int) -> torch.Tensor:
        return a[(min(r, c), max(r, c))]

    v = {(r, c): torch.full_like(a[(0, 0)], float(r == c)) for r in range(3) for c in range(3)}
    tiny = torch.finfo(cov.dtype).tiny
    for _ in range(JACOBI_SWEEPS):
        for p, q, r in ((0, 1, 2), (0, 2, 1), (1, 2, 0)):
            app, aqq, apq, arp, arq = a[(p, p)], a[(q, q)], a[(p, q)], entry(r, p), entry(r, q)
            rotate = apq.abs() > tiny
            theta = (aqq - app) / torch.where(rotate, 2 * apq, 1.0)
            sign = torch.where(theta >= 0, 1.0, -1.0)
            # t = tan of the angle that zeroes a[p, q]: the smaller root, finite for huge theta
            t = sign / (theta.abs() + torch.sqrt(1 + torch.clamp_max(theta * theta, 1e300)))
            t = torch.where(rotate, t, 0.0)
            c = torch.rsqrt(1 + t * t)
            s = t * c
            a[(p, p)] = c * c * app - 2 * s * c * apq + s * s * aqq
            a[(q, q)] = s * s * app + 2 * s * c * apq + c * c * aqq
            a[(p, q)] = torch.zeros_like(apq)
            a[(min(r, p), max(r, p))] = c * arp - s * arq
            a[(min(r, q), max(r, q))] = s * arp + c * arq
            for k in range(3):
                vkp, vkq = v[(k, p)], v[(k, q)]
                v[(k, p)], v[(k, q)] = c * vkp - s * vkq, s * vkp + c * vkq
    values = torch.stack([a[(0, 0)], a[(1, 1)], a[(2, 2)]], dim=1)
    vectors = torch.stack([torch.stack([v[(r, c)] for c in range(3)], dim=1) for r in range(3)], dim=1)
    return values, vectors


def merge_pairs(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], variance_floor: float
) -> dict[str, torch.Tensor]:
    """Moment-match each splat of ``a`` with the same row of ``b`` (columns as in ``SplatSet``, float64).

    Opacity: the pair's ink spread over the merged ellipsoid's area (ink kept, as splat-transform does), but never
    more than the two stacked on each other, ``1 - (1 - a_i)(1 - a_j)``: at any pixel two splats together cover
    at most that. The cap matters where merges are near-coincident (the ink rule would give two identical
    splats twice the opacity of one); elsewhere the ink rule is the lower one. Colour and SH: ink-weighted means.
    """
    log_w_a = log_ink(a["log_scales"], a["opacity_logits"])
    log_w_b = log_ink(b["log_scales"], b["opacity_logits"])
    p = torch.sigmoid(log_w_a - log_w_b)  # w_a / (w_a + w_b), without forming w
    q = 1 - p
    delta = b["positions"] - a["positions"]
    mean = a["positions"] + q.unsqueeze(1) * delta
    cov = merged_covariance(p, covariances(a["log_scales"], a["rotations"], variance_floor),
                            covariances(b["log_scales"], b["rotations"], variance_floor), delta)
    cov = 0.5 * (cov + cov.transpose(1, 2))
    eigenvalues, vectors = symmetric_eigh(cov)
    eigenvalues = eigenvalues.clamp_min(variance_floor)
    # eigh's vectors are orthonormal; flip one axis where they form a reflection so they are a rotation.
    flip = torch.where(determinants(vectors) < 0, -1.0, 1.0).to(vectors.dtype)
    vectors = torch.cat([vectors[:, :, :2], vectors[:, :, 2:] * flip[:, None, None]], dim=2)
    log_scales = 0.5 * torch.log(eigenvalues)

    log_alpha_ink = torch.logaddexp(log_w_a, log_w_b) - log_ellipsoid_area(log_scales)
    logit_ink = log_alpha_ink - torch.log(-torch.expm1(log_alpha_ink.clamp_max(-1e-12)))
    oa = a["opacity_logits"].clamp(-OPACITY_LOGIT_LIMIT, OPACITY_LOGIT_LIMIT)
    ob = b["opacity_logits"].clamp(-OPACITY_LOGIT_LIMIT, OPACITY_LOGIT_LIMIT)
    log_clear = torch.nn.functional.logsigmoid(-oa) + torch.nn.functional.logsigmoid(-ob)  # log (1-a)(1-b)
    logit_stacked = torch.log(-torch.expm1(log_clear)) - log_clear
    logit = torch.minimum(logit_ink, logit_stacked).clamp(-OUTPUT_LOGIT_LIMIT, OUTPUT_LOGIT_LIMIT)

    pc = p.unsqueeze(1)
    return {
        "positions": mean,
        "log_scales": log_scales,
        "rotations": matrices_to_quaternions(vectors),
        "opacity_logits": logit,
        "f_dc": pc * a["f_dc"] + (1 - pc) * b["f_dc"],
        "f_rest": pc * a["f_rest"] + (1 - pc) * b["f_rest"],
    }
