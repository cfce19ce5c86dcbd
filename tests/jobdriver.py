"""``python tests/jobdriver.py MODULE:FUNCTION JOB-ARGS...``: the real job entrypoint with another compress
function (from tests/jobfakes.py), for tests of what the job does around a codec stage."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the fakes, and this checkout's sogs_compressor

from sogs_compressor.job.main import build_parser, run_job  # noqa: E402

if __name__ == "__main__":
    module, _, name = sys.argv[1].partition(":")
    compress = getattr(importlib.import_module(module), name)
    raise SystemExit(run_job(build_parser().parse_args(sys.argv[2:]), compress=compress))
