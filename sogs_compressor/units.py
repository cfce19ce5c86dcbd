"""Sizes for people, in one convention everywhere: decimal (SI) units, as file managers and the S3 console show
them (1 kB = 1,000 bytes, 1 MB = 1,000,000 bytes, 1 GB = 10^9 bytes). Machine-read fields (JSON reports, log
events) carry exact byte counts (``*_bytes``) instead."""

from __future__ import annotations

UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_bytes(n: int | float | None) -> str:
    """``n`` bytes with three significant digits in the largest unit below it: 950 B, 93.6 kB, 1.23 GB."""
    if n is None:
        return "?"
    value = float(n)
    unit = UNITS[0]
    for unit in UNITS:
        if abs(value) < 999.5 or unit == UNITS[-1]:
            break
        value /= 1000
    if unit == "B":
        return f"{value:.0f} B"
    digits = 2 if abs(value) < 9.995 else 1 if abs(value) < 99.95 else 0
    return f"{value:.{digits}f} {unit}"
