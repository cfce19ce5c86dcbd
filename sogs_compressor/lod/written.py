"""What a Streamed SOG we have just written decodes to, from the textures we encoded rather than from disk.

The single-file verifier's three checks, per chunk: each WebP decodes back to its texture exactly (the encoder's
round trip), each chunk's files on disk hold those bytes and its meta.json (``confirm_written``), and the textures
plus the meta are decoded with the format's formulas on the device (``decode_on_device``). Here the written
``lod-meta.json`` is also parsed by our reader and must name our chunk files with our counts, so that a level
decoded chunk by chunk, in file order, is the level a reader assembles. Reading every chunk back through the
host reader instead decodes each WebP a second time: most of a large scene's verification time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sogs_compressor.errors import OutputError, SogsError
from sogs_compressor.splats import COLUMNS
from sogs_compressor.splats_torch import SplatTensors


@dataclass
class WrittenChunk:
    level: int
    name: str
    count: int
    meta: dict
    images: dict[str, np.ndarray]


class WrittenLevels:
    """The chunks of one Streamed SOG as they were written (file id order), decodable level by level."""

    def __init__(self) -> None:
        self.chunks: list[WrittenChunk] = []

    def add(self, level: int, name: str, meta: dict, images: dict[str, np.ndarray]) -> None:
        self.chunks.append(WrittenChunk(level, name, int(meta["count"]), meta, images))

    def check_manifest(self, meta_path: Path) -> None:
        """Our reader's view of ``meta_path`` must be these chunks: same file names, levels and splat counts."""
        from sogs_compressor.read.lod import read_manifest

        try:
            manifest = read_manifest(meta_path)
        except SogsError as error:
            raise OutputError(f"verification failed: the {meta_path.name} we wrote does not read back ({error})") from None
        names = [chunk.name for chunk in self.chunks]
        if manifest.filenames != names:
            raise OutputError(f"verification failed: {meta_path.name} names {len(manifest.filenames)} chunk files, "
                              f"not the {len(names)} written")
        for file, chunk in enumerate(self.chunks):
            held = sum(r.count for r in manifest.ranges if r.file == file)
            if manifest.file_level.get(file) != chunk.level or held != chunk.count:
                raise OutputError(f"verification failed: {meta_path.name} gives chunk {chunk.name} level "
                                  f"{manifest.file_level.get(file)} and {held} splats; it holds level {chunk.level}, "
                                  f"{chunk.count} splats")

    def decode(self, level: int, device: torch.device) -> SplatTensors:
        """Level ``level`` as a reader decodes it: its chunks in file order, one after another."""
        from sogs_compressor.verify.decode import decode_on_device

        parts = [decode_on_device(c.meta, c.images, device) for c in self.chunks if c.level == level]
        if not parts:
            raise OutputError(f"verification failed: level {level} has no chunk")
        if len(parts) == 1:
            return parts[0]
        columns = {name: torch.cat([getattr(p, name) for p in parts]) for name in COLUMNS}
        return SplatTensors(**columns, model=parts[0].model)
