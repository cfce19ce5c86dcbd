"""Image-difference measures between two renders: PSNR (whole picture and content only) and SSIM.

Images are float tensors (H, W, 3) in [0, 1]. SSIM is computed **per RGB channel** and averaged (as 3DGS
papers report it), with an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, over the
"valid" window positions only (no padding), the choice of Wang et al. and scikit-image.
"""

from __future__ import annotations

import math

import torch

PSNR_CAP_DB = 100.0
"""PSNR reported for identical images (MSE 0) and the ceiling of every value, so reports stay finite JSON."""

CONTENT_ALPHA = 0.01
"""A pixel is content when either render's accumulated opacity reaches this (else it shows background)."""

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def psnr_from_mse(mse: float) -> float:
    """10 log10(1 / MSE) for images in [0, 1], capped at ``PSNR_CAP_DB``."""
    if mse <= 10.0 ** (-PSNR_CAP_DB / 10.0):
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, -10.0 * math.log10(mse))


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float | None:
    """PSNR over all pixels and channels, or over the pixels where ``mask`` (H, W) is true (None if none)."""
    diff2 = (a.double() - b.double()).square()
    if mask is not None:
        if not bool(mask.any()):
            return None
        diff2 = diff2[mask]
    return psnr_from_mse(float(diff2.mean()))


def content_mask(alpha_a: torch.Tensor, alpha_b: torch.Tensor, threshold: float = CONTENT_ALPHA) -> torch.Tensor:
    """Pixels that are not plain background in either render."""
    return (alpha_a >= threshold) | (alpha_b >= threshold)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, device=None) -> torch.Tensor:
    """Normalized 1D Gaussian (size,), float64."""
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2.0
    w = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return w / w.sum()


def _blur_valid(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of (C, H, W), keeping only fully covered positions."""
    k = window.shape[0]
    c = x.shape[0]
    x = torch.nn.functional.conv2d(x.unsqueeze(0), window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    x = torch.nn.functional.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return x.squeeze(0)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of two (H, W, 3) images in [0, 1], per channel then averaged. Images smaller than the
    window in either side are compared with a window of their own size (sigma unchanged)."""
    x, y = a.double().permute(2, 0, 1), b.double().permute(2, 0, 1)
    size = min(SSIM_WINDOW, x.shape[1], x.shape[2])
    window = gaussian_window(size, SSIM_SIGMA, x.device)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    mu_x, mu_y = _blur_valid(x, window), _blur_valid(y, window)
    var_x = _blur_valid(x * x, window) - mu_x * mu_x
    var_y = _blur_valid(y * y, window) - mu_y * mu_y
    cov = _blur_valid(x * y, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def compare_images(
    image_a: torch.Tensor, image_b: torch.Tensor, alpha_a: torch.Tensor, alpha_b: torch.Tensor
) -> dict:
    """PSNR (whole, content), SSIM and the content fraction of one view, JSON-safe."""
    mask = content_mask(alpha_a, alpha_b)
    content = psnr(image_a, image_b, mask)
    return {
        "psnr": round(psnr(image_a, image_b), 4),
        "psnr_content": None if content is None else round(content, 4),
        "ssim": round(ssim(image_a, image_b), 6),
        "content_fraction": round(float(mask.double().mean()), 4),
    }


def summarize(views: list[dict], keys: tuple[str, ...] = ("psnr", "psnr_content", "ssim")) -> dict:
    """Mean and worst (lowest) of each measure over the views that have it."""
    out = {}
    for key in keys:
        values = [v[key] for v in views if v.get(key) is not None]
        if values:
            out[key] = {"mean": round(sum(values) / len(values), 4), "worst": round(min(values), 4)}
        else:
            out[key] = {"mean": None, "worst": None}
    return out
