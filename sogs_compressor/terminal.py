"""What a stream can show: is it a terminal, and may we colour it (https://no-color.org, https://force-color.org).

Colour is for people at a terminal; redirected output (a file, a pipe, CloudWatch) gets no ANSI codes unless the
user asks for them with ``FORCE_COLOR``. ``NO_COLOR`` wins over everything, as in CPython's own rule.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def is_terminal(stream) -> bool:
    """True when ``stream`` is an interactive terminal (False for files, pipes and closed streams)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def colour_wanted(stream, env: Mapping[str, str] | None = None) -> bool:
    """Whether to write ANSI colour codes to ``stream``: never with ``NO_COLOR`` set (non-empty), always with
    ``FORCE_COLOR`` set (non-empty), never to a ``TERM=dumb`` terminal, else only to a terminal."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    if env.get("TERM") == "dumb":
        return False
    return is_terminal(stream)
