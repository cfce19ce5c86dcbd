"""What one compression produced and measured: the codec's answer to "what did I get, what did I lose"."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class OutputFile:
    path: str
    bytes: int
    role: str  # "bundle", "meta", "texture", "lod-meta", "preview", "viewer"


SOG_FOLDER_ROLES = ("meta", "texture", "lod-meta")
"""The files of the folder layout's SOG (what a copy of the scene is without a bundle; a Streamed SOG's
lod-meta.json and its chunks' files)."""


@dataclass
class CompressionResult:
    """Everything the CLI prints and the job turns into reports.

    counts: {"input": N read, "dropped": {reason: n}, "output": N written, "quaternions_replaced": n}
    errors: per-attribute errors of our decoded output against the (sanitized) input (see verify.metrics)
    timings: seconds per stage, plus "total"
    textures: per texture file: WebP method, quality, bytes, seconds encoding and waiting for a worker
    lod: a Streamed SOG's (``--layout lod``) levels: {"levels": [{level, splats, chunks, bytes}], "chunks": n,
        "leaves": n, "chunking": {...}, "palette": "chunk" | "level"}; with the quality check each level also has its rendered quality from
        the distance the engine shows it at (``distance``, ``psnr``, ``psnr_content``, ...; ``lod.quality``) and
        "quality" says how it was measured; empty for the other layouts
    """

    input_path: str
    input_format: str
    input_bytes: int
    output_files: list[OutputFile] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    sh_degree_in: int = 0
    sh_degree_out: int = 0
    palette_size: int = 0
    model: str = "default"
    errors: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    textures: dict = field(default_factory=dict)
    device: str = "cpu"
    device_name: str = "cpu"
    settings: dict = field(default_factory=dict)
    peak_rss_bytes: int = 0
    peak_gpu_bytes: int = 0
    tool_version: str = ""
    lod: dict = field(default_factory=dict)

    @property
    def output_bytes(self) -> int:
        """Bytes of one complete copy of the SOG (the bundle if written, else the folder's meta.json and
        textures; the preview and the viewer page are not part of it)."""
        bundles = [f.bytes for f in self.output_files if f.role == "bundle"]
        if bundles:
            return sum(bundles)
        return sum(f.bytes for f in self.output_files if f.role in SOG_FOLDER_ROLES)

    @property
    def ratio(self) -> float:
        return self.input_bytes / self.output_bytes if self.output_bytes else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["output_bytes"] = self.output_bytes
        data["ratio"] = round(self.ratio, 3)
        return data
