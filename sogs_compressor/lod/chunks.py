"""The spatial partition of a Streamed SOG: a binary tree of bounds over all levels, chunk files per level.

It means what splat-transform 3.7.0's LOD writer (``write-lod.ts``) means, so that its options read the same:

- A kd-tree over the splat centres of every level together: a node splits at the median of its centres' widest
  axis while it holds more than ``chunk_count`` K splats, or is wider than ``chunk_extent`` world units and holds
  more than ``chunk_min`` K (a node of 256 or fewer splats never splits). Nodes that stop splitting are leaves.
- Each leaf holds, per level, the splats of that level that fell in it, in Morton order; they are appended to the
  level's current chunk file as one contiguous ``(offset, count)`` range, and a file that has grown past
  ``chunk_count`` K splats is closed after that leaf. Files are named ``L_I/meta.json`` (level L, its I-th file),
  numbered in the order the tree walk first meets them.
- A leaf's bound is the box around the 1-sigma ellipsoid boxes of all its splats (all levels); an inner node's,
  the union of its children's.

Defaults are splat-transform's: 512 K splats per chunk, 16 world units, 8 K.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from sogs_compressor.cpus import thread_count
from sogs_compressor.order.morton import morton_order
from sogs_compressor.splats import SplatSet

DEFAULT_CHUNK_COUNT = 512
"""K splats (x1024) per chunk file, about (``--lod-chunk-count``)."""

DEFAULT_CHUNK_EXTENT = 16.0
"""World units a leaf may span before it splits (``--lod-chunk-extent``)."""

DEFAULT_CHUNK_MIN = 8
"""K splats below which a leaf is not split for its extent (``--lod-chunk-min``)."""

KD_LEAF = 256
"""splat-transform's kd-tree stops at this many splats: no leaf is split below it."""

MAX_THREADS = 8
"""Leaves (and levels' boxes) worked on at once; each leaf's Morton sort also uses torch's own threads."""


@dataclass(eq=False)
class ChunkFile:
    """One chunk SOG: ``rows`` of level ``level`` (indices into that level's splats) in file order."""

    level: int
    index: int
    rows: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.level}_{self.index}/meta.json"


@dataclass
class Partition:
    """The tree (lod-meta.json's ``tree``, plain JSON types) and the chunk files, by file id."""

    tree: dict
    files: list[ChunkFile] = field(default_factory=list)

    def level_files(self, level: int) -> list[ChunkFile]:
        return [f for f in self.files if f.level == level]


def ellipsoid_boxes(splats: SplatSet) -> tuple[np.ndarray, np.ndarray]:
    """Per splat (min, max) corners (float64) of the box around its 1-sigma ellipsoid: centre -/+ |R| exp(s).

    Written out per axis instead of a stacked (N, 3, 3) einsum: a third of the time and memory, and the sums in
    a fixed order, ``(x + z) + y``, the order numpy's einsum used here, so the bounds are the same bytes."""
    q = splats.rotations.astype(np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.divide(q, norm, out=np.tile([[1.0, 0.0, 0.0, 0.0]], (len(q), 1)), where=norm > 0)
    w, x, y, z = q.T
    with np.errstate(over="ignore"):
        sx, sy, sz = np.exp(splats.log_scales.astype(np.float64)).T
    rotation_rows = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
        (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
        (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)),
    )
    half = np.empty((len(q), 3))
    with np.errstate(over="ignore", invalid="ignore"):
        for axis, (rx, ry, rz) in enumerate(rotation_rows):
            half[:, axis] = (np.abs(rx) * sx + np.abs(rz) * sz) + np.abs(ry) * sy
    centre = splats.positions.astype(np.float64)
    return centre - half, centre + half


def _column_min(values: np.ndarray) -> np.ndarray:
    """``values.min(axis=0)`` of an (N, 3) array, column by column: numpy reduces a contiguous column far faster than
    across a short last axis (the partition's largest cost otherwise), and a minimum is exact either way."""
    return np.array([values[:, k].min() for k in range(values.shape[1])], values.dtype)


def _column_max(values: np.ndarray) -> np.ndarray:
    """``values.max(axis=0)`` column by column (see ``_column_min``)."""
    return np.array([values[:, k].max() for k in range(values.shape[1])], values.dtype)


def _round_out(value: float, up: bool) -> float:
    """``value`` to 8 significant digits (about float32's precision, short JSON), rounded away from the box's
    inside: up for a max, down for a min, so the written bound still holds every splat."""
    short = float(f"{value:.8g}")
    if (short < value) if up else (short > value):
        step = 10.0 ** (math.floor(math.log10(abs(value))) - 7)
        short = float(f"{short + step if up else short - step:.8g}")
    return short


def _bound(low: np.ndarray, high: np.ndarray) -> dict:
    return {"min": [_round_out(float(v), False) for v in low], "max": [_round_out(float(v), True) for v in high]}


def partition(levels: list[SplatSet], chunk_count: int = DEFAULT_CHUNK_COUNT,
              chunk_extent: float = DEFAULT_CHUNK_EXTENT, chunk_min: int = DEFAULT_CHUNK_MIN) -> Partition:
    """The tree and chunk files of ``levels`` (level 0 first; positions must be finite)."""
    bin_size, bin_min = chunk_count * 1024, chunk_min * 1024
    sizes = [lvl.count for lvl in levels]
    base = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    centres = np.concatenate([lvl.positions for lvl in levels]).astype(np.float32)
    with ThreadPoolExecutor(min(MAX_THREADS, thread_count()), thread_name_prefix="partition") as pool:
        boxes = list(pool.map(ellipsoid_boxes, levels))
        box_low = np.concatenate([b[0] for b in boxes])
        box_high = np.concatenate([b[1] for b in boxes])
        del boxes
        usable = np.isfinite(box_low).all(axis=1) & np.isfinite(box_high).all(axis=1)  # splat-transform skips others

        def shape(indices: np.ndarray) -> dict:
            """The subtree over ``indices`` (ascending: the order the median split and the leaves see); each leaf
            holds its ``indices`` until its contents replace them (``leaf_contents``, ``_assign_files``)."""
            points = centres[indices]
            extent = _column_max(points) - _column_min(points)
            count = indices.size
            if count > KD_LEAF and (count > bin_size or (float(extent.max()) > chunk_extent and count > bin_min)):
                mid = count >> 1
                split = np.argpartition(points[:, int(np.argmax(extent))], mid, kind="introselect")
                lower = np.zeros(count, bool)
                lower[split[:mid]] = True  # each half keeps the ascending order of ``indices`` without a sort
                return {"children": [shape(indices[lower]), shape(indices[~lower])]}
            return {"indices": indices}

        def leaf_contents(indices: np.ndarray) -> tuple[list[tuple[int, np.ndarray]], dict]:
            """A leaf's rows per level (in Morton order) and its bound: each leaf's alone, so leaves run at once."""
            per_level = []
            level_of = np.searchsorted(base, indices, side="right") - 1
            for level in np.unique(level_of):
                level = int(level)
                rows = indices[level_of == level] - base[level]  # ascending, as ``indices``
                per_level.append((level, rows[morton_order(levels[level].positions[rows])]))
            kept = indices[usable[indices]]
            if kept.size:
                bound = _bound(_column_min(box_low[kept]), _column_max(box_high[kept]))
            else:  # nothing measurable: the centres' box
                bound = _bound(_column_min(centres[indices]), _column_max(centres[indices]))
            return per_level, bound

        tree = shape(np.arange(base[-1], dtype=np.int64))
        leaves = list(_leaves(tree))
        contents = list(pool.map(leaf_contents, [node.pop("indices") for node in leaves]))
    files = _assign_files(leaves, contents, bin_size)
    _bound_inner_nodes(tree)
    return Partition(tree=tree, files=files)


def _leaves(node: dict):
    """The leaves under ``node``, in the tree walk's order (first child first)."""
    if "children" in node:
        for child in node["children"]:
            yield from _leaves(child)
    else:
        yield node


def _assign_files(leaves: list[dict], contents: list, bin_size: int) -> list[ChunkFile]:
    """Give each leaf's rows of each level a range in that level's current file, in the tree walk's order: a file
    that has grown past ``bin_size`` splats is closed after that leaf (splat-transform's rule)."""
    open_files: dict[int, ChunkFile] = {}
    open_rows: dict[int, list[np.ndarray]] = {}
    open_size: dict[int, int] = {}
    files: list[ChunkFile] = []
    for node, (per_level, bound) in zip(leaves, contents, strict=True):
        lods: dict[str, dict] = {}
        for level, rows in per_level:
            if level not in open_files:
                index = sum(1 for f in files if f.level == level)
                open_files[level] = ChunkFile(level, index, np.zeros(0, np.int64))
                open_rows[level], open_size[level] = [], 0
                files.append(open_files[level])
            chunk = open_files[level]
            lods[str(level)] = {"file": files.index(chunk), "offset": open_size[level], "count": int(rows.size)}
            open_rows[level].append(rows)
            open_size[level] += int(rows.size)
            if open_size[level] > bin_size:  # close it: the level's next leaf starts a new file
                chunk.rows = np.concatenate(open_rows.pop(level))
                del open_files[level], open_size[level]
        node["bound"], node["lods"] = bound, lods
    for level in list(open_files):
        open_files[level].rows = np.concatenate(open_rows[level])
    return files


def _bound_inner_nodes(node: dict) -> dict:
    """Every inner node's bound: the union of its children's (leaves have theirs); returns ``node``'s."""
    if "children" in node:
        children = node.pop("children")  # re-added after "bound": the key order lod-meta.json is written in
        bounds = [_bound_inner_nodes(child) for child in children]
        low = [min(a, b) for a, b in zip(*(b["min"] for b in bounds), strict=True)]
        high = [max(a, b) for a, b in zip(*(b["max"] for b in bounds), strict=True)]
        node["bound"], node["children"] = {"min": low, "max": high}, children
    return node["bound"]
