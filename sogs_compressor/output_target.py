"""Where ``compress -o OUT`` puts each scene: a folder, one ``.sog`` file, or a folder layout's ``meta.json``.

Like splat-transform's ``input output``, an output that names a file says what to write: ``out.sog`` is the
bundle (layout ``bundle``), ``some/folder/meta.json`` the folder layout in ``some/folder`` (layout ``dir``). Any
other path, or one ending in ``/``, is a folder. With several inputs the output must be a folder, and each scene's
folder layout goes into its own subfolder ``OUT/NAME/`` beside ``OUT/NAME.sog``, so no scene overwrites another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sogs_compressor.errors import OutputError, UsageError
from sogs_compressor.layouts import layout_asked_by
from sogs_compressor.read.registry import scene_file_names, scene_suffixes
from sogs_compressor.write.sog import SogPlacement


def output_name(input_path: str | Path) -> str:
    """Base name of a scene's outputs: the file name without .ply/.compressed.ply/.sog (a SOG folder: its name)."""
    path = Path(input_path)
    if path.name in scene_file_names():
        return path.parent.resolve().name or "scene"
    name = path.name
    for suffix in scene_suffixes():
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "scene"
    return path.stem or "scene"


@dataclass(frozen=True)
class SceneOutput:
    """One input's outputs: ``folder/name.preview.png`` and the SOG where ``placement`` says (None: beside it)."""

    input: str
    folder: Path
    name: str
    placement: SogPlacement | None


def plan_outputs(output: str, inputs: Sequence[str], layout: str | None) -> tuple[list[SceneOutput], str | None]:
    """Each input's outputs and the layout to use (None: the default); raises ``UsageError`` (exit 2) for a
    file-like output with several inputs, a layout the output's name contradicts, or two inputs of one name."""
    asked = layout_asked_by(output)
    if asked is not None:
        if len(inputs) > 1:
            raise UsageError(f"-o {output} names one file, but {len(inputs)} inputs were given: give a folder")
        if layout not in (None, asked.name):
            raise UsageError(f"-o {output} names {asked.output_named}, which --layout {layout} contradicts (leave "
                             "--layout out or give a folder)")
        path = Path(output)
        if asked.copies == ("bundle",):  # the path is the bundle itself, named as given
            if path.is_dir():
                raise OutputError(f"{output} is a folder: end the path with '/' to write into it, or remove it")
            return [SceneOutput(inputs[0], path.parent, path.name[: -len(asked.output_file)],
                                SogPlacement(path, path.parent))], asked.name
        return [SceneOutput(inputs[0], path.parent, output_name(inputs[0]), None)], asked.name

    folder = Path(output)
    if len(inputs) == 1:
        return [SceneOutput(inputs[0], folder, output_name(inputs[0]), None)], layout
    names: dict[str, str] = {}
    plans = []
    for path in inputs:
        name = output_name(path)
        clash = names.setdefault(name.casefold(), str(path))
        if clash != str(path):
            raise UsageError(f"{clash} and {path} would both write {name}.sog in {output}: compress them into "
                             "different folders")
        plans.append(SceneOutput(path, folder, name, SogPlacement(folder / f"{name}.sog", folder / name)))
    return plans, layout
