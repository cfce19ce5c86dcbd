"""The in-memory splat set every stage passes along.

All arrays are float32 numpy arrays on the host, one row per splat. GPU stages move what they need to the
device themselves (see ``sogs_compressor.device``) and hand numpy arrays back, so every stage can be tested
on its own without a GPU.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

SH_C0 = 0.28209479177387814
"""Degree-0 spherical-harmonics constant: colour = 0.5 + SH_C0 * f_dc."""

COEFFS_PER_DEGREE = (0, 3, 8, 15)
"""Spherical-harmonics AC coefficients per colour channel for degree 0..3."""

MODELS = ("default", "antialiased", "2dgs")
"""Rendering models a scene can be tagged with (carried to the SOG ``model`` field)."""


COLUMNS = ("positions", "log_scales", "rotations", "opacity_logits", "f_dc", "f_rest")
"""The per-splat arrays of a SplatSet."""

GATHER_BLOCK_ROWS = 1 << 18
"""Rows per block of a threaded row gather."""


def gather_rows(values: np.ndarray, index: np.ndarray, workers: int | None = None) -> np.ndarray:
    """``values[index]`` (integer ``index``), gathered in row blocks by several threads for large arrays.

    numpy releases the GIL in ``take``, so the random-access copy that reordering millions of splats costs
    runs on every core (3x faster on 2 cores at 4M rows x 24 floats); the result is the same array.
    """
    index = np.asarray(index, dtype=np.intp)
    rows = index.shape[0]
    workers = workers or min(8, os.cpu_count() or 1)
    if workers < 2 or rows < 2 * GATHER_BLOCK_ROWS:
        return values[index]
    if rows and (index.min() < -values.shape[0] or index.max() >= values.shape[0]):
        raise IndexError(f"row index out of range for {values.shape[0]} rows")
    out = np.empty((rows, *values.shape[1:]), values.dtype)

    def gather(start: int) -> None:
        stop = start + GATHER_BLOCK_ROWS
        # Range checked above; "wrap" then means Python's negative indices and lets take write to ``out`` directly.
        np.take(values, index[start:stop], axis=0, out=out[start:stop], mode="wrap")

    with ThreadPoolExecutor(workers, thread_name_prefix="gather") as pool:
        list(pool.map(gather, range(0, rows, GATHER_BLOCK_ROWS)))
    return out


def sh_degree_for_rest_count(rest_count: int) -> int:
    """SH degree for a number of ``f_rest`` values (0/9/24/45); ValueError otherwise."""
    for degree, coeffs in enumerate(COEFFS_PER_DEGREE):
        if 3 * coeffs == rest_count:
            return degree
    raise ValueError(f"f_rest count {rest_count} is not one of 0, 9, 24, 45")


@dataclass
class SplatSet:
    """A set of 3D Gaussians.

    positions: (N, 3) world position, the PLY's own frame.
    log_scales: (N, 3) natural log of the per-axis standard deviation (may hold -inf for flat 2DGS splats).
    rotations: (N, 4) quaternion (w, x, y, z), not necessarily normalized.
    opacity_logits: (N,) opacity before the sigmoid.
    f_dc: (N, 3) SH DC coefficient per colour channel.
    f_rest: (N, 3*K) SH AC coefficients, channel-major (all R, then all G, then all B), K in {0, 3, 8, 15}.
    model: "default", "antialiased" or "2dgs".
    """

    positions: np.ndarray
    log_scales: np.ndarray
    rotations: np.ndarray
    opacity_logits: np.ndarray
    f_dc: np.ndarray
    f_rest: np.ndarray
    model: str = "default"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.positions.shape[0]
        expected = {
            "positions": (n, 3),
            "log_scales": (n, 3),
            "rotations": (n, 4),
            "opacity_logits": (n,),
            "f_dc": (n, 3),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value.shape != shape:
                raise ValueError(f"{name} has shape {value.shape}, expected {shape}")
        if self.f_rest.ndim != 2 or self.f_rest.shape[0] != n:
            raise ValueError(f"f_rest has shape {self.f_rest.shape}, expected ({n}, 0|9|24|45)")
        sh_degree_for_rest_count(self.f_rest.shape[1])
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; expected one of {MODELS}")

    @property
    def count(self) -> int:
        return int(self.positions.shape[0])

    @property
    def sh_degree(self) -> int:
        return sh_degree_for_rest_count(self.f_rest.shape[1])

    @property
    def coeffs_per_channel(self) -> int:
        return COEFFS_PER_DEGREE[self.sh_degree]

    def take(self, index: np.ndarray) -> SplatSet:
        """Rows selected by an integer index or boolean mask, in that order."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return replace(self, **{name: gather_rows(getattr(self, name), index) for name in COLUMNS},
                       extra=dict(self.extra))

    def reorder_in_place(self, permutation: np.ndarray) -> SplatSet:
        """Put the rows in ``permutation`` order, one column at a time (never a second copy of the whole set).

        For callers that own the set (the pipeline after reading a file): at millions of splats a full copy is
        gigabytes. Each column is replaced by its reordered copy, so at most one column exists twice.
        """
        permutation = np.asarray(permutation)
        for name in COLUMNS:
            setattr(self, name, gather_rows(getattr(self, name), permutation))
        return self

    def with_sh_degree(self, degree: int) -> SplatSet:
        """The same splats with SH truncated to ``degree`` (never raised)."""
        degree = min(degree, self.sh_degree)
        k_old, k_new = self.coeffs_per_channel, COEFFS_PER_DEGREE[degree]
        if k_new == k_old:
            return self
        rest = self.f_rest.reshape(self.count, 3, k_old)[:, :, :k_new].reshape(self.count, 3 * k_new)
        return replace(self, f_rest=np.ascontiguousarray(rest))

    @staticmethod
    def empty_like_columns(n: int, sh_degree: int = 0, model: str = "default") -> SplatSet:
        """A zero-initialized set with identity rotations (for readers and tests)."""
        rotations = np.zeros((n, 4), np.float32)
        rotations[:, 0] = 1.0
        return SplatSet(
            positions=np.zeros((n, 3), np.float32),
            log_scales=np.zeros((n, 3), np.float32),
            rotations=rotations,
            opacity_logits=np.zeros((n,), np.float32),
            f_dc=np.zeros((n, 3), np.float32),
            f_rest=np.zeros((n, 3 * COEFFS_PER_DEGREE[sh_degree]), np.float32),
            model=model,
        )
