"""structlog for the job: JSON lines for CloudWatch, a console renderer on a TTY, stdlib loggers routed through.

Tracebacks never carry frame locals (they could hold credentials or dump arrays); values of environment
variables whose name contains KEY/SECRET/TOKEN/PASSWORD are never logged.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

from sogs_compressor.terminal import colour_wanted

SECRET_MARKERS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIAL")
NOISY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "PIL", "werkzeug")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def redact_env(env: dict[str, str], prefixes: tuple[str, ...]) -> dict[str, str]:
    """The variables with one of ``prefixes``, secrets replaced by ``***``."""
    return {k: ("***" if is_secret_name(k) else v) for k, v in sorted(env.items()) if k.startswith(prefixes)}


def _drop_secret_fields(_logger, _name, event: dict) -> dict:
    for key in list(event):
        if is_secret_name(key) and key != "event":
            event[key] = "***"
    return event


def choose_format(env: dict[str, str], stream) -> str:
    wanted = (env.get("LOG_FORMAT") or "").strip().lower()
    if wanted in ("json", "console"):
        return wanted
    return "console" if getattr(stream, "isatty", lambda: False)() else "json"


def configure_logging(level: str = "INFO", fmt: str | None = None, stream=None) -> str:
    """Set up structlog + stdlib logging on ``stream`` (stdout); returns the format used (json|console)."""
    stream = stream or sys.stdout
    fmt = fmt or choose_format(dict(os.environ), stream)
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        _drop_secret_fields,
    ]
    if fmt == "json":
        renderer = [
            structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(default=str),
        ]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=colour_wanted(stream),
                                                  exception_formatter=structlog.dev.plain_traceback)]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    ))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric))
    return fmt


def bind_job(**fields) -> None:
    """Bind job/host/... to every later log line of this process."""
    structlog.contextvars.bind_contextvars(**fields)


def get_logger(name: str = "sogs_compressor.job"):
    return structlog.get_logger(name)
