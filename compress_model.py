"""SageMaker Processing entrypoint: ``python compress_model.py --help`` (same as ``sogs-compressor job``).

The ``__main__`` guard matters: multi-GPU workers are started with ``spawn``, which imports this file again
in every worker.
"""

from sogs_compressor.job.main import main

if __name__ == "__main__":
    raise SystemExit(main())
