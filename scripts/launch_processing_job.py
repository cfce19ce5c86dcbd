#!/usr/bin/env python3
"""Start a SOG compression SageMaker Processing job; same as ``sogs-compressor launch`` (see --help)."""

import sys
from pathlib import Path

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sogs_compressor.cli import main  # noqa: E402  (the same command and error handling as the CLI)

if __name__ == "__main__":
    raise SystemExit(main(["launch", *sys.argv[1:]]))
