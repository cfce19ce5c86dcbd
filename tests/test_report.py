"""Scene and job reports: the facts they carry, the text a person reads, JSON that always parses."""

from __future__ import annotations

import json
from pathlib import Path

from sogs_compressor.report.hashing import sha256_file
from sogs_compressor.report.job import (
    build_job_report,
    job_report_text,
    report_stem,
    summarize,
    write_job_report,
)
from sogs_compressor.report.scene import build_scene_report, scene_report_text, write_scene_reports
from sogs_compressor.result import CompressionResult, OutputFile


def sample_result() -> dict:
    result = CompressionResult(
        input_path="/in/room.ply", input_format="ply", input_bytes=4000,
        output_files=[OutputFile("/tmp/x/room.sog", 1000, "bundle"), OutputFile("/tmp/x/meta.json", 300, "meta")],
        counts={"input": 100, "dropped": {"nan": 2, "zero_scale": 0}, "output": 98, "quaternions_replaced": 1},
        sh_degree_in=3, sh_degree_out=2, palette_size=64, errors={"positions": {"max_abs": 0.001, "psnr": float("inf")}},
        timings={"read": 0.1, "total": 1.5}, device="cuda:0", device_name="NVIDIA H100", settings={"preset": "fast"},
        peak_rss_bytes=2**30, peak_gpu_bytes=2**31, tool_version="9.9.9")
    return result.to_dict()


def scene_report() -> dict:
    outputs = [{"name": "room.sog", "bytes": 1000, "sha256": "a" * 64, "role": "bundle"},
               {"name": "meta.json", "bytes": 300, "sha256": "b" * 64, "role": "meta"}]
    return build_scene_report(scene="sub/room.ply", input_info={"name": "room.ply", "bytes": 4000, "sha256": "c" * 64},
                              result=sample_result(), outputs=outputs, cache_key="k", job={"name": "j", "host": "h"},
                              metadata={"owner": "me"})


def test_scene_report_carries_the_facts():
    report = scene_report()
    assert report["ratio"] == 4.0 and report["output_bytes"] == 1000
    assert report["splats"] == {"input": 100, "dropped": {"nan": 2, "zero_scale": 0}, "output": 98,
                                "quaternions_replaced": 1}
    assert report["sh_degree"] == {"input": 3, "output": 2}
    assert (report["device"], report["device_name"]) == ("cuda:0", "NVIDIA H100")
    assert report["peak_memory"] == {"rss_bytes": 2**30, "gpu_bytes": 2**31}
    assert report["tool_version"] == "9.9.9" and report["metadata"] == {"owner": "me"}


def test_scene_text_is_short_and_readable():
    text = scene_report_text(scene_report())
    assert len(text.splitlines()) < 25
    for fact in ("sub/room.ply", "ratio 4.00x", "100 in, 98 out, dropped: nan 2", "SH degree    3 -> 2",
                 "NVIDIA H100", "room.sog", "c" * 64, "positions.psnr: inf", "1.07 GB"):
        assert fact in text, fact


def test_streamed_sog_report_gives_levels_chunks_and_bytes_per_level():
    """--layout lod: the report carries the levels (JSON and text), and the text sums the chunk files (hundreds of
    them on a big scene) in one line while the JSON lists each."""
    result = sample_result()
    result["lod"] = {"levels": [{"level": 0, "splats": 4000, "chunks": 3, "bytes": 128_000},
                                {"level": 1, "splats": 2000, "chunks": 2, "bytes": 73_400}],
                     "chunks": 5, "lod_meta_bytes": 2460, "chunking": {"count": 1, "extent": 16.0, "min": 8}}
    outputs = [{"name": "lod-meta.json", "bytes": 2460, "sha256": "a" * 64, "role": "lod-meta"},
               *[{"name": f"{c}/{f}", "bytes": 100, "sha256": "b" * 64, "role": "texture"}
                 for c in ("0_0", "0_1", "0_2", "1_0", "1_1") for f in ("meta.json", "sh0.webp")],
               {"name": "room.html", "bytes": 5000, "sha256": "d" * 64, "role": "viewer"}]
    report = build_scene_report(scene="room.ply", input_info={"name": "room.ply", "bytes": 4000, "sha256": "c" * 64},
                                result=result, outputs=outputs, cache_key="k", job={})
    assert report["lod"] == result["lod"]
    text = scene_report_text(report)
    for fact in ("levels       2 in 5 chunks, lod-meta.json 2.46 kB",
                 "  level 0    4000 splats, 3 chunks, 128 kB", "  level 1    2000 splats, 2 chunks, 73.4 kB",
                 "  lod-meta.json ", "  room.html ", "  5 chunk folders ", " 1.00 kB  10 files (each with its sha256"):
        assert fact in text, fact
    assert "0_0/meta.json" not in text
    assert scene_report()["lod"] is None and "levels " not in scene_report_text(scene_report())


def test_reports_written_json_last_and_valid_despite_infinities(tmp_path: Path):
    paths = write_scene_reports(tmp_path, scene_report())
    assert [p.name for p in paths] == ["compression_report.txt", "compression_report.json"]
    data = json.loads((tmp_path / "compression_report.json").read_text())
    assert data["errors"]["positions"]["psnr"] == "inf"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compression_report.json", "compression_report.txt"]


def test_job_report_sums_scenes_and_lists_failures(tmp_path: Path):
    scenes = [
        {"scene": "a.ply", "status": "ok", "input_bytes": 100, "output_bytes": 10, "splats_in": 5, "splats_out": 4,
         "dropped": {"nan": 1}, "error": None},
        {"scene": "b.ply", "status": "reused", "input_bytes": 300, "output_bytes": 30, "splats_in": 7,
         "splats_out": 7, "dropped": {"nan": 0}, "error": None},
        {"scene": "c.ply", "status": "failed", "error": {"kind": "bad_input", "exit_code": 14, "message": "short"}},
        {"scene": "d.ply", "status": "not_started", "error": None},
    ]
    totals = summarize(scenes)
    assert (totals["compressed"], totals["reused"], totals["failed"], totals["not_started"]) == (1, 1, 1, 1)
    assert (totals["input_bytes"], totals["output_bytes"], totals["ratio"]) == (400, 40, 10.0)
    assert (totals["splats_in"], totals["splats_out"], totals["dropped"]) == (12, 11, {"nan": 1})
    report = build_job_report(job="j", host="algo-1", hosts=["algo-1"], started_at="t", duration_s=1.0,
                              tool_version="1", config={}, scenes=scenes, exit_code=14, message="1 failed")
    assert report["failures"] == [{"scene": "c.ply", "kind": "bad_input", "exit_code": 14, "message": "short"}]
    text = job_report_text(report)
    assert "c.ply: [bad_input, exit 14] short" in text and "ratio 10.00x" in text
    paths = write_job_report(tmp_path, report)
    assert [p.name for p in paths] == ["job_report-algo-1.txt", "job_report-algo-1.json"]
    assert report_stem("a/b c") == "job_report-a_b_c"


def test_sha256_file_matches_hashlib(tmp_path: Path):
    import hashlib

    data = bytes(range(256)) * 50000
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_scene_text_names_the_input_format_and_the_layout_from_their_tables():
    report = scene_report()
    assert "(PLY)" in scene_report_text(report)
    assert "layout " not in scene_report_text(report)  # no layout recorded in the settings
    report["settings"]["layout"] = "bundle"
    report["input"]["format"] = "compressed_ply"
    text = scene_report_text(report)
    assert "(compressed PLY)" in text and "layout       bundle: one NAME.sog" in text
    report["input"]["format"] = "splat"  # written by a later version: shown as recorded
    assert "(splat)" in scene_report_text(report)
