"""The output layouts, one row each: name, how an output path asks for it, which copies of the SOG it writes, and
which stages write it. ``--layout`` and the job's ``SOGS_LAYOUT`` (their choices and help), ``compress -o``'s
reading of the output path, the pipeline's choice of stages, the job's chunk-folder checks and the reports ask
this table.

A layout's stages are ``pipeline.compress_splats`` (one SOG: its ``copies`` go through ``write/sog.py``) or, for a
streamed layout, ``lod/streamed.compress_streamed`` (``write/lod.py``). The table names them by ``streamed``
rather than holding the functions: those stage modules import ``options``, which checks layout names here, so a
reference from this module to them would tie the two into a circle. This module imports nothing heavy: the
command line reads it before any scene is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sogs_compressor.formats import BUNDLE_SUFFIX, LOD_META_NAME, META_NAME


@dataclass(frozen=True)
class OutputLayout:
    """One output layout. ``output_file``: an output path whose file name is this (a whole name such as
    ``meta.json``) or ends in it (a suffix such as ``.sog``) asks for this layout (None: only a folder does);
    ``output_named``: how a message calls such a path. ``copies``: the copies of the SOG it writes, ``bundle``
    (``NAME.sog``) and/or ``folder`` (``meta.json`` and the WebP files). ``streamed``: a Streamed SOG
    (``lod-meta.json`` and one SOG folder per chunk), written by the levels-of-detail stages."""

    name: str
    description: str
    output_file: str | None
    output_named: str
    copies: tuple[str, ...]
    streamed: bool = False

    def names(self, file_name: str) -> bool:
        """Whether an output path whose last part is ``file_name`` asks for this layout (any letter case)."""
        wanted, name = self.output_file, file_name.lower()
        if wanted is None:
            return False
        if wanted.startswith("."):
            return name.endswith(wanted) and len(name) > len(wanted)
        return name == wanted


OUTPUT_LAYOUTS = (
    OutputLayout("bundle", "one NAME.sog, a zip of meta.json and the WebP files", BUNDLE_SUFFIX, "a .sog bundle",
                 ("bundle",)),
    OutputLayout("dir", "meta.json and the WebP files in a folder", META_NAME, "a meta.json", ("folder",)),
    OutputLayout("both", "bundle and dir", None, "", ("folder", "bundle")),
    OutputLayout("lod", "a Streamed SOG: lod-meta.json and chunk SOGs, levels of detail", LOD_META_NAME,
                 "a lod-meta.json", (), streamed=True),
)
"""Every output layout."""

LAYOUT_NAMES = tuple(layout.name for layout in OUTPUT_LAYOUTS)
DEFAULT_LAYOUT = "both"


def layout_named(name: str) -> OutputLayout:
    """The layout called ``name`` (``--layout``, ``CompressOptions.layout``); KeyError for an unknown one."""
    for layout in OUTPUT_LAYOUTS:
        if layout.name == name:
            return layout
    raise KeyError(name)


def layout_asked_by(output: str) -> OutputLayout | None:
    """The layout an output path asks for by its file name (``out.sog``, ``d/meta.json``, ``d/lod-meta.json``), or
    None for a folder (any other name, or a path ending in a separator)."""
    if output.endswith(("/", os.sep)):
        return None
    name = Path(output).name
    return next((layout for layout in OUTPUT_LAYOUTS if layout.names(name)), None)


def layout_help() -> str:
    """``--layout``'s help: each layout and what it writes."""
    return "output layout: " + "; ".join(
        f"{layout.name} ({layout.description}{', default' if layout.name == DEFAULT_LAYOUT else ''})"
        for layout in OUTPUT_LAYOUTS)
