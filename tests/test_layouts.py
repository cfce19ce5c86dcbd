"""The output-layout table (``layouts.py``): what each layout writes, which output paths ask for it, and that the
command line, the options and the job take their choices from it."""

from __future__ import annotations

import argparse

import pytest

from sogs_compressor.codec_args import add_codec_options
from sogs_compressor.errors import SogsError
from sogs_compressor.job.config import load_config
from sogs_compressor.layouts import LAYOUT_NAMES, OUTPUT_LAYOUTS, layout_asked_by, layout_named
from sogs_compressor.options import CompressOptions
from sogs_compressor.output_target import plan_outputs


def test_each_layout_writes_a_copy_or_a_streamed_sog_and_is_asked_for_by_a_distinct_name():
    assert len(set(LAYOUT_NAMES)) == len(OUTPUT_LAYOUTS)
    for layout in OUTPUT_LAYOUTS:
        assert bool(layout.copies) != layout.streamed, layout.name
        assert set(layout.copies) <= {"bundle", "folder"}
    asked = [layout.output_file for layout in OUTPUT_LAYOUTS if layout.output_file is not None]
    assert len(asked) == len(set(asked))
    with pytest.raises(KeyError):
        layout_named("zip")


@pytest.mark.parametrize("layout", OUTPUT_LAYOUTS, ids=lambda layout: layout.name)
def test_an_output_named_for_a_layout_asks_for_it(tmp_path, layout):
    if layout.output_file is None:
        assert layout_asked_by(str(tmp_path / "out")) is None
        return
    name = f"scene{layout.output_file}" if layout.output_file.startswith(".") else layout.output_file
    output = str(tmp_path / name)
    assert layout_asked_by(output) is layout
    plans, chosen = plan_outputs(output, ["in.ply"], None)
    assert chosen == layout.name and len(plans) == 1
    others = [other.name for other in OUTPUT_LAYOUTS if other is not layout]
    with pytest.raises(SogsError, match=f"names {layout.output_named}, which --layout {others[0]} contradicts"):
        plan_outputs(output, ["in.ply"], others[0])


def test_the_command_line_options_and_job_take_the_table_choices(tmp_path):
    parser = argparse.ArgumentParser()
    add_codec_options(parser)
    layout_action = next(action for action in parser._actions if action.dest == "layout")
    assert tuple(layout_action.choices) == LAYOUT_NAMES
    for name in LAYOUT_NAMES:
        assert CompressOptions(layout=name).validate().layout == name
    with pytest.raises(SogsError, match="--layout must be one of " + ", ".join(LAYOUT_NAMES)):
        CompressOptions(layout="zip").validate()
    args = argparse.Namespace(input=[str(tmp_path)], output=str(tmp_path / "out"), opt_ml_root=str(tmp_path / "ml"))
    config = load_config(args, {"SOGS_LAYOUT": "lod"})
    assert layout_named(config.options.layout).streamed
