"""PSNR / SSIM against known values and an independent, direct SSIM implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sogs_compressor.render.metrics import PSNR_CAP_DB, compare_images, content_mask, psnr, ssim, summarize


def image(seed: int, h: int = 24, w: int = 20) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(0.2, 0.8, (h, w, 3)).astype(np.float32))


def test_identical_images_give_the_cap_and_ssim_one() -> None:
    a = image(0)
    assert psnr(a, a.clone()) == PSNR_CAP_DB
    assert ssim(a, a.clone()) == pytest.approx(1.0, abs=1e-12)


def test_psnr_of_a_known_offset_and_noise_level() -> None:
    a = torch.full((32, 32, 3), 0.5)
    assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    noise = torch.from_numpy(np.random.default_rng(1).normal(0, 0.05, (256, 256, 3)).astype(np.float32))
    a = torch.full((256, 256, 3), 0.5)
    assert psnr(a, a + noise) == pytest.approx(-20 * math.log10(0.05), abs=0.05)  # 26.02 dB


def test_content_psnr_uses_only_pixels_covered_in_either_render() -> None:
    a = torch.zeros(10, 10, 3)
    b = a.clone()
    b[:5] = 0.1  # error only in the top half
    alpha_a = torch.zeros(10, 10)
    alpha_b = torch.zeros(10, 10)
    alpha_a[:3] = 1.0
    alpha_b[3:5] = 0.5
    mask = content_mask(alpha_a, alpha_b)
    assert int(mask.sum()) == 50
    assert psnr(a, b, mask) == pytest.approx(20.0, abs=1e-4)
    assert psnr(a, b) == pytest.approx(20.0 + 10 * math.log10(2), abs=1e-4)
    assert psnr(a, b, torch.zeros(10, 10, dtype=torch.bool)) is None


def direct_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. SSIM written out: per channel, every valid 11x11 window, Gaussian weights sigma 1.5."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for c in range(3):
        for i in range(x.shape[0] - 10):
            for j in range(x.shape[1] - 10):
                px, py = x[i:i + 11, j:j + 11, c], y[i:i + 11, j:j + 11, c]
                mx, my = (w * px).sum(), (w * py).sum()
                vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
                cov = (w * (px - mx) * (py - my)).sum()
                values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_a_direct_windowed_implementation() -> None:
    a = image(2)
    b = (a + torch.from_numpy(np.random.default_rng(3).normal(0, 0.1, a.shape).astype(np.float32))).clamp(0, 1)
    expected = direct_ssim(a.double().numpy(), b.double().numpy())
    assert ssim(a, b) == pytest.approx(expected, abs=1e-9)
    assert 0.3 < expected < 0.95


def test_ssim_of_constant_images_is_the_luminance_term() -> None:
    a, b = torch.full((16, 16, 3), 0.3), torch.full((16, 16, 3), 0.6)
    c1 = 0.01**2
    assert ssim(a, b) == pytest.approx((2 * 0.3 * 0.6 + c1) / (0.3**2 + 0.6**2 + c1), abs=1e-6)


def test_compare_and_summary_are_json_ready() -> None:
    a, b = image(4), image(5)
    alpha = torch.ones(a.shape[:2])
    view = compare_images(a, b, alpha, alpha)
    assert set(view) == {"psnr", "psnr_content", "ssim", "content_fraction"}
    assert view["content_fraction"] == 1.0 and view["psnr"] == view["psnr_content"]
    summary = summarize([{"psnr": 30.0, "psnr_content": None, "ssim": 0.9}, {"psnr": 20.0, "psnr_content": 25.0,
                                                                              "ssim": 0.8}])
    assert summary["psnr"] == {"mean": 25.0, "worst": 20.0}
    assert summary["psnr_content"] == {"mean": 25.0, "worst": 25.0}
    assert summary["ssim"] == {"mean": 0.85, "worst": 0.8}
