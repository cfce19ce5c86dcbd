"""sogs-compressor: 3D Gaussian Splatting scenes -> PlayCanvas SOG, fast, verified."""

from sogs_compressor.cpus import set_openmp_defaults

__version__ = "0.3.1"

set_openmp_defaults()  # before anything imports torch, which reads them when it loads OpenMP
