"""Write (or check) the table of contents of README.md from its headings.

The TOC sits between ``<!-- toc -->`` and ``<!-- /toc -->`` and lists every ``##`` and ``###`` heading outside
code fences (but its own), linked by GitHub's anchor rule. ``python scripts/readme_toc.py`` rewrites it; ``--check`` exits 1
when it is stale (tests/test_readme.py runs the same comparison).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- toc -->", "<!-- /toc -->"


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every level-2 and level-3 heading, code fences skipped."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"^(#{2,3}) (.+?)\s*$", line)):
            found.append((len(match.group(1)), match.group(2)))
    return found


def anchor(title: str, seen: dict[str, int]) -> str:
    """GitHub's anchor: lower case, punctuation but '-' and '_' dropped, spaces to '-', repeats numbered."""
    slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    return f"{slug}-{count}" if count else slug


def toc(text: str) -> str:
    seen: dict[str, int] = {}
    lines = []
    for level, title in headings(text):
        if title == "Contents":
            continue
        lines.append(f"{'  ' * (level - 2)}- [{title}](#{anchor(title, seen)})")
    return "\n".join(lines)


def with_toc(text: str) -> str:
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    return f"{before}{START}\n{toc(text)}\n{END}{after}"


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"README.md has no {START} ... {END} block", file=sys.stderr)
        return 1
    updated = with_toc(text)
    if "--check" in argv:
        if updated != text:
            print("README.md's table of contents is stale: run python scripts/readme_toc.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
