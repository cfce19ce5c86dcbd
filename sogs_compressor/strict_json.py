"""JSON from an untrusted file, read as a browser reads it and bounded: one parse for every JSON we take in.

``JSON.parse`` refuses NaN and Infinity, which Python's ``json`` accepts; a huge integer literal makes ``int()``
slow; deep nesting exhausts the recursion limit. Each is a plain reason here (``JsonRefused``), which each caller
turns into its own error class and exit code, naming its file (meta.json and lod-meta.json: a corrupt SOG;
cameras.json: a bad cameras file).
"""

from __future__ import annotations

import json
from typing import Any

MAX_INT_DIGITS = 20
"""Integer literals longer than this are no count, index or size any of our inputs holds."""


class JsonRefused(ValueError):
    """Why a text is not JSON we accept (a reason without the file's name: the caller adds it)."""


def _refuse_constant(constant: str) -> None:
    raise JsonRefused(f"holds {constant}, which is not JSON (browsers refuse it)")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonRefused(f"holds an integer literal of {len(text)} digits")
    return int(text)


def loads_strict(raw: bytes | str) -> Any:
    """The JSON value of ``raw`` (UTF-8); ``JsonRefused`` saying why when it is not one we accept."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_int=_parse_int)
    except JsonRefused:
        raise
    except UnicodeDecodeError as error:
        raise JsonRefused(f"is not valid JSON (not UTF-8 text: {error.reason})") from None
    except json.JSONDecodeError as error:
        raise JsonRefused(f"is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
    except RecursionError:
        raise JsonRefused("is nested too deeply") from None
    except ValueError as error:  # a number literal Python refuses to convert
        raise JsonRefused(f"is not usable JSON ({str(error)[:120]})") from None
