"""A labelled preview grid a person can judge in seconds: original | compressed | |difference| x 8."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sogs_compressor.errors import OutputError

MAX_PREVIEW_BYTES = 1_000_000
PNG_LEVEL = 6
"""zlib level of the preview PNG: Pillow's ``optimize`` (level 9 and more filter trials) wrote ~1% fewer bytes
in four times the time, on the critical path of every compress (bench/RESULTS.md)."""
DIFF_GAIN = 8
MAX_CELL = 320
HEADER = 18
GAP = 2
COLUMNS = ("original", "compressed", f"|difference| x{DIFF_GAIN}")


def difference_image(a: np.ndarray, b: np.ndarray, gain: int = DIFF_GAIN) -> np.ndarray:
    """|a - b| * gain of two uint8 (H, W, 3) images, clipped to 255."""
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32)) * gain
    return np.clip(diff, 0, 255).astype(np.uint8)


def _fit(image: np.ndarray, max_side: int) -> Image.Image:
    pil = Image.fromarray(image)
    scale = max_side / max(pil.size)
    if scale < 1.0:
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.LANCZOS)
    return pil


def compose_grid(rows: list[tuple[np.ndarray, np.ndarray, str]], max_cell: int = MAX_CELL) -> Image.Image:
    """One row per view (original, compressed, label); a column header on top and the label above each row."""
    font = ImageFont.load_default()
    cells = [(_fit(a, max_cell), _fit(b, max_cell), _fit(difference_image(a, b), max_cell), label)
             for a, b, label in rows]
    cell_w = max(c[0].width for c in cells)
    cell_h = max(c[0].height for c in cells)
    width = 3 * cell_w + 4 * GAP
    height = HEADER + len(cells) * (HEADER + cell_h + GAP) + GAP
    grid = Image.new("RGB", (width, height), (40, 40, 40))
    draw = ImageDraw.Draw(grid)
    for col, title in enumerate(COLUMNS):
        draw.text((GAP + col * (cell_w + GAP) + 4, 3), title, fill=(255, 255, 255), font=font)
    y = HEADER
    for original, compressed, diff, label in cells:
        draw.text((GAP + 4, y + 3), label, fill=(255, 230, 120), font=font)
        y += HEADER
        for col, img in enumerate((original, compressed, diff)):
            grid.paste(img, (GAP + col * (cell_w + GAP), y))
        y += cell_h + GAP
    return grid


def write_preview(
    rows: list[tuple[np.ndarray, np.ndarray, str]], path: str | Path, max_bytes: int = MAX_PREVIEW_BYTES
) -> int:
    """Write the grid as PNG at most ``max_bytes`` long (shrinking the cells until it fits); returns bytes."""
    path = Path(path)
    cell = MAX_CELL
    while True:
        buffer = io.BytesIO()
        compose_grid(rows, cell).save(buffer, format="PNG", compress_level=PNG_LEVEL)
        data = buffer.getvalue()
        if len(data) <= max_bytes or cell <= 32:
            break
        cell = int(cell * 0.8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as error:
        raise OutputError(f"cannot write preview {path}: {error.strerror or error}") from None
    return len(data)
