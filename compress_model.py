"""SageMaker Processing entrypoint: ``python compress_model.py --help`` (same as ``sogs-compressor job``).

The ``__main__`` guard matters: multi-GPU workers are started with ``spawn``, which imports this file again
in every worker. The process ends through ``hard_exit``: a GPU warm-up thread still in native code must not
turn the job's exit code into an abort at interpreter teardown.
"""

from sogs_compressor.interrupt import hard_exit
from sogs_compressor.job.main import main

if __name__ == "__main__":
    hard_exit(main())
