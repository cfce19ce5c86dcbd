"""Errors a user can act on, each with its own exit code.

Anything raised as a ``SogsError`` is reported as one line (``str(error)``) and exits with ``error.exit_code``;
anything else is an internal error (exit 1). The table is repeated in the CLI's ``--help`` and the README.
"""

from __future__ import annotations


class SogsError(Exception):
    """Base class: a failure with a clear one-line message and a documented exit code."""

    exit_code = 1
    kind = "internal"


class InputError(SogsError):
    """The input cannot be used (bad file, bad header, bad values)."""

    exit_code = 3
    kind = "bad_input"


class InputNotFoundError(InputError):
    exit_code = 3


class NotAPlyError(InputError):
    exit_code = 10


class UnsupportedFormatError(InputError):
    """A PLY ``format`` line (or other header construct) we do not read."""

    exit_code = 11


class MissingPropertiesError(InputError):
    exit_code = 12


class ShCountError(InputError):
    """An ``f_rest`` count other than 0/9/24/45."""

    exit_code = 13


class SizeMismatchError(InputError):
    """The header's element counts disagree with the file size (truncated or trailing data)."""

    exit_code = 14


class EmptySceneError(InputError):
    exit_code = 15


class InvalidValuesError(InputError):
    """Non-finite values found while ``--invalid error`` is in force."""

    exit_code = 16


class CorruptSogError(InputError):
    """A SOG (bundle or meta.json + WebP files) that does not decode."""

    exit_code = 17


class DeviceError(SogsError):
    """The requested compute device is missing or ran out of memory."""

    exit_code = 20
    kind = "no_gpu"


class StorageError(SogsError):
    """S3 (or other remote storage) failed."""

    exit_code = 30
    kind = "s3_error"


class OutputError(SogsError):
    """The output could not be written."""

    exit_code = 40
    kind = "output_error"


class UsageError(SogsError):
    """The command line asks for something that cannot be done (checked before any work starts)."""

    exit_code = 2
    kind = "usage"


class Interrupted(SogsError):
    """SIGINT/SIGTERM stopped the run."""

    exit_code = 130
    kind = "interrupted"


EXIT_CODES = {
    0: "success",
    1: "internal error (a bug: please report it with the log)",
    2: "usage error (bad command-line arguments)",
    3: "input not found or unreadable",
    10: "input is not a PLY / not a supported scene file",
    11: "unsupported PLY format or header construct",
    12: "required PLY properties missing",
    13: "f_rest count is not 0, 9, 24 or 45",
    14: "file size does not match the header (truncated or trailing data)",
    15: "scene has zero splats",
    16: "non-finite values with --invalid error",
    17: "corrupt SOG input",
    20: "GPU requested but unavailable, or out of GPU memory",
    30: "S3 / AWS service error",
    40: "output could not be written",
    130: "interrupted (SIGINT/SIGTERM)",
    141: "standard output closed by its reader (e.g. piped into head); nothing more is printed",
}
EXIT_OUTPUT_CLOSED = 141
"""128 + SIGPIPE: what a shell reports for a writer whose reader went away, as tools killed by SIGPIPE exit."""


def exit_code_table() -> str:
    """The exit-code table as aligned text (for --help)."""
    return "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())
