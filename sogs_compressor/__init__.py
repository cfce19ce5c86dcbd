"""sogs-compressor: 3D Gaussian Splatting scenes -> PlayCanvas SOG, fast, verified."""

__version__ = "0.2.0"
