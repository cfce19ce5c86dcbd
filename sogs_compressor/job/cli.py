"""``sogs-compressor job``: the SageMaker Processing entrypoint as a subcommand (same flags as compress_model.py)."""

from __future__ import annotations

import argparse


def register(subparsers, common: argparse.ArgumentParser) -> None:
    from sogs_compressor.job.main import DESCRIPTION, add_job_arguments, epilog, run_job

    parser = subparsers.add_parser("job", parents=[common], help="run a SageMaker Processing job step",
                                   description=DESCRIPTION, epilog=epilog(),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_job_arguments(parser)
    parser.set_defaults(handler=run_job)
