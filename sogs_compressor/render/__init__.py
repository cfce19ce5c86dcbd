"""Reference splat renderer, rendered PSNR/SSIM, cameras and previews (``render`` / ``compare`` commands).

Modules: ``camera`` (Camera, orbit rigs, 3DGS cameras.json), ``sh`` (SH colour), ``rasterize`` (prepare/render),
``metrics`` (PSNR/SSIM), ``preview`` (labelled PNG grid), ``quality`` (``quality_check`` for reports), ``cli``.
Kept import-free so that building the CLI parser does not load torch.
"""
