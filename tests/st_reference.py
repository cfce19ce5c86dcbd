"""Straight re-implementations of splat-transform algorithms, used as references by tests and benchmarks.

``st_quantize_1d`` follows ``quantize1dColumns``/``quantizeFinite`` of @playcanvas/splat-transform 3.7.0
(formats.md 4.1): blended quantile/uniform histogram of min(1024, n) bins, bin weight count**0.5, dynamic
programme over the bins, end sentinels for infinities, mid-point labelling (NaN -> last entry).
"""

from __future__ import annotations

import numpy as np


def st_quantize_1d(values: np.ndarray, k: int = 256, alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(codebook float32[k], labels uint8) exactly as splat-transform computes them (up to DP tie-breaks)."""
    data = np.asarray(values, dtype=np.float32).reshape(-1)
    if data.size == 0:
        return np.zeros(k, np.float32), np.zeros(np.shape(values), np.uint8)
    finite = np.sort(data[np.isfinite(data)])
    has_neg, has_pos = bool(np.any(data == -np.inf)), bool(np.any(data == np.inf))
    lo, hi = int(has_neg), int(has_pos)
    neg_c = (float(finite[0]) if finite.size else 0.0) - 20
    pos_c = (float(finite[-1]) if finite.size else 0.0) + 20
    if not lo and not hi and float(finite[-1]) - float(finite[0]) < 1e-20:
        return np.full(k, finite[0], np.float32), np.zeros(np.shape(values), np.uint8)
    k_finite = max(0, k - lo - hi)
    if finite.size == 0 or k_finite == 0:
        cents = np.zeros(0, np.float32)
    elif float(finite[-1]) - float(finite[0]) < 1e-20:
        cents = finite[:1].astype(np.float32)
    else:
        cents = _st_quantize_finite(finite, k_finite, alpha)
    book = np.zeros(k, np.float32)
    book[lo : lo + cents.size] = cents
    pad = cents[-1] if cents.size else (neg_c if has_neg else pos_c)
    book[lo + cents.size : k - hi] = pad
    if lo:
        book[0] = neg_c
    if hi:
        book[k - 1] = pos_c
    b64 = book.astype(np.float64)
    mids = (b64[:-1] + b64[1:]) * 0.5
    flat = data.astype(np.float64)
    labels = np.searchsorted(mids, flat, side="right")
    labels[np.isnan(flat)] = k - 1
    return book, labels.astype(np.uint8).reshape(np.shape(values))


def _st_quantize_finite(s: np.ndarray, k: int, alpha: float) -> np.ndarray:
    n = s.size
    v = s.astype(np.float64)
    vmin, vmax = v[0], v[-1]
    h = min(1024, n)
    vrange = vmax - vmin
    iqr = v[int(np.floor(n * 0.75))] - v[int(np.floor(n * 0.25))]
    beta = max(0.5, min(0.999, 1 - iqr / vrange))
    pos = beta * (np.arange(n) / n) + (1 - beta) * ((v - vmin) / vrange)
    bins = np.minimum(h - 1, np.floor(h * pos)).astype(np.int64)
    counts = np.bincount(bins, minlength=h).astype(np.float64)
    sums = np.bincount(bins, weights=v, minlength=h)
    with np.errstate(invalid="ignore", divide="ignore"):
        centers = np.where(counts > 0, sums / counts, vmin + (np.arange(h) + 0.5) / h * vrange)
    w = np.where(counts > 0, counts**alpha, 0.0)
    pw = np.concatenate(([0.0], np.cumsum(w)))
    pwx = np.concatenate(([0.0], np.cumsum(w * centers)))
    pwxx = np.concatenate(([0.0], np.cumsum(w * centers * centers)))
    a = np.arange(h)[:, None]
    b = np.arange(h)[None, :]
    ww = pw[b + 1] - pw[a]
    wx = pwx[b + 1] - pwx[a]
    wxx = pwxx[b + 1] - pwxx[a]
    with np.errstate(invalid="ignore", divide="ignore"):
        cost = np.where(ww > 0, wxx - wx * wx / ww, 0.0)
    cost = np.where(a <= b, cost, np.inf)  # cost[a, b]: bins a..b
    eff_k = min(k, int(np.count_nonzero(counts)))
    # costT[j, s] = cost of bins s+1..j (previous groups end at bin s); rows contiguous for a fast argmin.
    cost_t = np.ascontiguousarray(np.vstack((cost[1:], np.full((1, h), np.inf))).T)
    dp = cost[0].copy()
    rows = np.arange(h)
    split = [None, None]
    for m in range(2, eff_k + 1):
        # dp_new[j] = min over s in [m-2, j-1] of dp[s] + cost[s+1, j]; first minimum wins, as in JS.
        total = dp[None, :] + cost_t
        total[:, : m - 2] = np.inf
        arg = total.argmin(axis=1)
        dp = total[rows, arg]
        split.append(arg)
    out = np.zeros(eff_k, np.float32)
    j = h - 1
    for m in range(eff_k, 0, -1):
        s_ = int(split[m][j]) if m > 1 else -1
        lo_bin = s_ + 1
        wsum = pw[j + 1] - pw[lo_bin]
        out[m - 1] = (pwx[j + 1] - pwx[lo_bin]) / wsum if wsum > 0 else (centers[lo_bin] + centers[j]) * 0.5
        j = s_
    return np.sort(out)
