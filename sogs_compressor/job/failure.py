"""How the job tells SageMaker what happened: the exit code and one line in ``/opt/ml/output/message``.

SageMaker shows the first 1 KB of the message file as ``ExitMessage`` (messages of several hosts are
concatenated first), and fails the job on non-UTF-8 content: so one host-prefixed UTF-8 line, cut on a
character boundary to a share of 1 KB.
"""

from __future__ import annotations

import os
from pathlib import Path

from sogs_compressor.errors import InputError, SogsError

MESSAGE_LIMIT = 1024
MIN_SHARE = 200

# Job exit code when scenes failed with different codes: the most serious class wins.
SEVERITY = (1, 40, 30, 20, 3)

JOB_EXIT_RULE = (
    "A job whose scenes failed exits with the failed scenes' code when they all share one, otherwise with the\n"
    "most serious class among them: 1 (internal) > 40 (output) > 30 (S3) > 20 (GPU) > 3 (bad input, any of\n"
    "3/10-17). 130 when interrupted. Each scene's own code is in job_report-<host>.json."
)


def exit_class(code: int) -> int:
    """Bad-input codes 3 and 10-17 form one class (3); other codes are their own class."""
    return 3 if code == 3 or 10 <= code <= 17 else code


def job_exit_code(scene_codes: list[int], interrupted: bool = False) -> int:
    """The job's exit code from the failed scenes' codes (see ``JOB_EXIT_RULE``)."""
    if interrupted:
        return 130
    if not scene_codes:
        return 0
    if len(set(scene_codes)) == 1:
        return scene_codes[0]
    classes = {exit_class(c) for c in scene_codes}
    for code in SEVERITY:
        if code in classes:
            return code
    return max(classes)


def error_record(error: BaseException) -> dict:
    """A JSON-safe description of a scene failure: kind, exit code and one line."""
    if isinstance(error, SogsError):
        kind = error.kind if not isinstance(error, InputError) else "bad_input"
        return {"kind": kind, "exit_code": int(error.exit_code), "message": one_line(str(error))}
    return {"kind": "internal", "exit_code": 1, "message": one_line(f"internal error: {type(error).__name__}: {error}")}


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def truncate_utf8(text: str, limit: int) -> str:
    """At most ``limit`` bytes of UTF-8, cut on a character boundary."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def message_share(host_count: int) -> int:
    """Bytes one host may use so that every host's line fits the 1 KB ExitMessage."""
    return max(MIN_SHARE, MESSAGE_LIMIT // max(1, host_count))


def format_message(host: str, text: str, host_count: int = 1) -> str:
    """``<host>: <text>`` on one line, within this host's share of 1 KB, ending in a newline."""
    line = one_line(f"{host}: {text}")
    return truncate_utf8(line, message_share(host_count) - 1) + "\n"


def write_message(path: Path, host: str, text: str, host_count: int = 1) -> str:
    """Write the message file (creating its folder); never raises: a failure here must not hide the real one."""
    message = format_message(host, text, host_count)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(message, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
    return message
