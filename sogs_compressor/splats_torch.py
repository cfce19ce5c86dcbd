"""A splat set held as torch tensors on a device: the twin of ``splats.SplatSet`` for the stages that stay there.

The verifier decodes the written SOG straight into one, measures it against the original and hands it to the
renderer without a round trip through host memory. Same fields, shapes and dtype (float32) as ``SplatSet``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sogs_compressor.splats import COLUMNS, SplatSet, sh_degree_for_rest_count


@dataclass
class SplatTensors:
    """``SplatSet``'s columns as float32 tensors on one device (``f_rest`` channel-major, (N, 0|9|24|45))."""

    positions: torch.Tensor
    log_scales: torch.Tensor
    rotations: torch.Tensor
    opacity_logits: torch.Tensor
    f_dc: torch.Tensor
    f_rest: torch.Tensor
    model: str = "default"

    @property
    def count(self) -> int:
        return int(self.positions.shape[0])

    @property
    def sh_degree(self) -> int:
        return sh_degree_for_rest_count(int(self.f_rest.shape[1]))

    @property
    def coeffs_per_channel(self) -> int:
        return int(self.f_rest.shape[1]) // 3

    @property
    def device(self) -> torch.device:
        return self.positions.device

    @classmethod
    def from_splats(cls, splats: SplatSet, device: torch.device | str, rows: slice | None = None) -> SplatTensors:
        """Upload ``splats`` (or a slice of its rows) to ``device`` (on the CPU: the same memory, no copy)."""
        rows = rows or slice(None)

        def upload(values: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(values[rows], np.float32)).to(device)

        return cls(**{name: upload(getattr(splats, name)) for name in COLUMNS}, model=splats.model)

    def to_splats(self) -> SplatSet:
        """Copy back to a host ``SplatSet``."""
        return SplatSet(**{name: getattr(self, name).cpu().numpy() for name in COLUMNS}, model=self.model)

    def rows(self, rows: slice) -> SplatTensors:
        """A view of a slice of rows."""
        return SplatTensors(**{name: getattr(self, name)[rows] for name in COLUMNS}, model=self.model)

    def select(self, mask: torch.Tensor) -> SplatTensors:
        """The rows where ``mask`` (N,) is true, in order (a copy)."""
        return SplatTensors(**{name: getattr(self, name)[mask] for name in COLUMNS}, model=self.model)


def rotation_matrices(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) unit quaternions (w, x, y, z) -> (N, 3, 3) rotation matrices (columns = the rotated axes). Callers
    normalize first, each by its own rule for zero and tiny quaternions (the renderer, decimation)."""
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)
