"""The per-scene report: ``compression_report.json`` and ``compression_report.txt`` beside the SOG.

The JSON report is written last of all the scene's files: its presence means the scene is complete (the cache
relies on this too).
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

from sogs_compressor import tolerances
from sogs_compressor.layouts import LAYOUT_NAMES, layout_named
from sogs_compressor.read.registry import format_named
from sogs_compressor.result import SOG_FOLDER_ROLES
from sogs_compressor.units import human_bytes

SCHEMA = "sogs-compressor/scene-report/1"
JSON_NAME = "compression_report.json"
TEXT_NAME = "compression_report.txt"
REPORT_NAMES = (TEXT_NAME, JSON_NAME)  # in writing / upload order


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_scene_report(*, scene: str, input_info: dict, result: dict, outputs: list[dict], cache_key: str,
                       job: dict, metadata: dict | None = None, status: str = "ok",
                       reused_from: str | None = None) -> dict:
    """Assemble the report from the codec's ``CompressionResult.to_dict()`` and the job's own measurements.

    input_info: {"name", "path", "bytes", "sha256"}; outputs: [{"name", "bytes", "sha256", "role"}] relative to
    the scene folder.
    """
    counts = result.get("counts", {})
    output_bytes = result.get("output_bytes") or _complete_copy_bytes(outputs)
    input_bytes = int(input_info["bytes"])
    return {
        "schema": SCHEMA,
        "status": status,
        "scene": scene,
        "created_at": utc_now(),
        "tool_version": result.get("tool_version", ""),
        "job": job,
        "input": {**input_info, "format": result.get("input_format", "")},
        "outputs": outputs,
        "output_bytes": int(output_bytes),
        "ratio": round(input_bytes / output_bytes, 3) if output_bytes else 0.0,
        "splats": {
            "input": counts.get("input"),
            "dropped": counts.get("dropped", {}),
            "output": counts.get("output"),
            "quaternions_replaced": counts.get("quaternions_replaced", 0),
        },
        "sh_degree": {"input": result.get("sh_degree_in"), "output": result.get("sh_degree_out")},
        "palette_size": result.get("palette_size"),
        "lod": result.get("lod") or None,
        "settings": result.get("settings", {}),
        "cache_key": cache_key,
        "reused_from": reused_from,
        "device": result.get("device"),
        "device_name": result.get("device_name"),
        "timings_s": result.get("timings", {}),
        "peak_memory": {"rss_bytes": result.get("peak_rss_bytes", 0), "gpu_bytes": result.get("peak_gpu_bytes", 0)},
        "errors": result.get("errors", {}),
        "error_bound": {"on": (result.get("settings") or {}).get("error_bound", True),
                        "tolerances": tolerances.as_dict()},
        "quality": result.get("quality", {}),
        "metadata": metadata,
    }


def _complete_copy_bytes(outputs: list[dict]) -> int:
    bundles = [o["bytes"] for o in outputs if o.get("role") == "bundle"]
    return sum(bundles) if bundles else sum(o["bytes"] for o in outputs if o.get("role") in SOG_FOLDER_ROLES)


def _number(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _flatten(prefix: str, value, lines: list[str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, lines)
    elif isinstance(value, list | tuple) and len(value) <= 8:
        lines.append(f"{prefix}: {', '.join(_number(v) for v in value)}")
    else:
        lines.append(f"{prefix}: {_number(value)}")


def scene_report_text(report: dict) -> str:
    """The same facts as the JSON, most important first, for a person to read in 20 seconds."""
    splats = report["splats"]
    dropped = splats.get("dropped") or {}
    dropped_text = ", ".join(f"{k} {v}" for k, v in dropped.items() if v) or "none"
    inp = report["input"]
    lines = [
        f"scene        {report['scene']}   [{report['status']}]",
        f"input        {inp['name']}  {human_bytes(inp['bytes'])}  ({format_text(inp.get('format'))})",
        f"output       {human_bytes(report['output_bytes'])}  ratio {report['ratio']:.2f}x",
        *layout_lines((report.get("settings") or {}).get("layout")),
        f"splats       {splats.get('input')} in, {splats.get('output')} out, dropped: {dropped_text}",
        f"SH degree    {report['sh_degree']['input']} -> {report['sh_degree']['output']}"
        f"   palette {report.get('palette_size')}",
        *lod_lines(report.get("lod")),
        f"device       {report.get('device')} ({report.get('device_name')})",
        f"peak memory  host {human_bytes(report['peak_memory']['rss_bytes'])}, "
        f"GPU {human_bytes(report['peak_memory']['gpu_bytes'])}",
    ]
    if report.get("reused_from"):
        lines.append(f"reused       {report['reused_from']} (same input sha256 and settings)")
    timings = report.get("timings_s") or {}
    if timings:
        lines.append("timings (s)  " + ", ".join(f"{k} {_number(float(v))}" for k, v in timings.items()))
    lines += quality_lines(report.get("quality") or {})
    lines += bound_lines(report.get("errors") or {})
    errors: list[str] = []
    _flatten("", report.get("errors") or {}, errors)
    if errors:
        lines.append("errors (decoded output vs input):")
        lines += [f"  {line}" for line in errors]
    lines.append("files:")
    lines += [f"  {o['name']:<28} {human_bytes(o['bytes']):>12}  sha256 {o['sha256']}" for o in report["outputs"]
              if "/" not in o["name"]]
    chunks = [o for o in report["outputs"] if "/" in o["name"]]
    if chunks:  # a Streamed SOG's chunk files: hundreds of lines, each in the JSON report
        folders = len({o["name"].split("/", 1)[0] for o in chunks})
        lines.append(f"  {f'{folders} chunk folders':<28} {human_bytes(sum(o['bytes'] for o in chunks)):>12}  "
                     f"{len(chunks)} files (each with its sha256 in {JSON_NAME})")
    lines.append(f"input sha256 {inp['sha256']}")
    settings = report.get("settings") or {}
    if settings:
        lines.append("settings     " + ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None))
    if report.get("metadata") is not None:
        lines.append("metadata     " + json.dumps(report["metadata"], sort_keys=True)[:500])
    lines.append(f"tool         sogs-compressor {report.get('tool_version')}   {report['created_at']}")
    return "\n".join(lines) + "\n"


def format_text(name: str | None) -> str:
    """The input format as the format table (``read/registry.py``) describes it: ``compressed PLY``."""
    try:
        return format_named(name).description
    except KeyError:  # a format this version does not know, or none recorded
        return name or "?"


def layout_lines(name: str | None) -> list[str]:
    """The output layout (``layouts.py``) and what it writes."""
    if name not in LAYOUT_NAMES:  # an older report, or none recorded
        return []
    return [f"layout       {name}: {layout_named(name).description}"]


def lod_lines(lod: dict | None) -> list[str]:
    """A Streamed SOG's levels (``--layout lod``): splats, chunks, bytes and, when measured, each level's rendered
    quality."""
    if not lod:
        return []
    levels = lod.get("levels") or []
    lines = [f"levels       {len(levels)} in {lod.get('chunks')} chunks, lod-meta.json "
             f"{human_bytes(lod.get('lod_meta_bytes') or 0)}"
             + ("; as given (one input per level)" if lod.get("input") == "levels" else "")]
    for level in levels:
        quality = level_quality_text(level)
        lines.append(f"  level {level['level']:<4} {level['splats']} splats, {level['chunks']} chunks, "
                     f"{human_bytes(level['bytes'])}" + (f"; {quality}" if quality else ""))
    return lines


def bound_lines(errors: dict) -> list[str]:
    """Whether every splat is within the per-splat tolerances (``tolerances.py``), and the worst cases."""
    if not errors or "log_scale_beyond" not in errors:
        return []
    from sogs_compressor.verify.metrics import beyond_warnings

    warnings = beyond_warnings(errors)
    worst = (f"worst: log-scale growth {_number(errors['log_scale_growth_max'])} (p99 "
             f"{_number(errors['log_scale_growth_p99'])}), f_dc {_number(errors['f_dc_abs_max'])}, opacity "
             f"{_number(errors['opacity_growth_max'])}, rotation {_number(errors['rotation_deg_max'])} deg, "
             f"position {_number(errors['position_cells_max'])} cells")
    if not warnings:
        return [f"error bound  every splat within the per-splat tolerances; {worst}"]
    return [f"error bound  WARNING: {'; '.join(warnings)}; {worst}"]


def quality_lines(quality: dict, preview_path: str | None = None) -> list[str]:
    """The rendered-quality summary (PSNR/SSIM of decoded output vs original) and the preview's name (or
    ``preview_path``, where the reader is not in the scene's folder)."""
    if quality.get("error"):
        return [f"quality      not measured: {quality['error']}"]
    summary = quality.get("summary")
    if not summary:
        return []
    psnr, content, ssim = summary.get("psnr", {}), summary.get("psnr_content", {}), summary.get("ssim", {})
    lines = [
        f"quality      PSNR {_number(psnr.get('mean'))} dB mean, {_number(psnr.get('worst'))} dB worst view; "
        f"content PSNR {_number(content.get('mean'))} dB; SSIM {_number(ssim.get('mean'))} "
        f"({quality.get('cameras', {}).get('count')} views, {quality.get('size')} px)"
    ]
    kinds = quality.get("by_kind") or {}
    if kinds:
        lines.append("views        " + "; ".join(
            f"{kind} {k.get('views')}: content PSNR {_number(k['psnr_content']['mean'])} dB mean, "
            f"{_number(k['psnr_content']['worst'])} worst" for kind, k in kinds.items()))
    if quality.get("preview"):
        lines.append(f"preview      {preview_path or quality['preview']}  (original | compressed | difference x8)")
    lines += target_lines(quality.get("target"))
    return lines


def level_quality_text(level: dict) -> str:
    """A Streamed SOG level's rendered quality, from the distance the engine shows it at (``lod.quality``)."""
    if level.get("error"):
        return f"not measured: {level['error']}"
    if "psnr" not in level:
        return ""
    return (f"PSNR {_number(level['psnr'])} dB, content PSNR {_number(level.get('psnr_content'))} dB at engine "
            f"distance {_number(level['distance'])}")


def target_lines(target: dict | None) -> list[str]:
    """What ``--target-psnr`` chose and why (``target.summary``)."""
    if not target:
        return []
    if target.get("error"):
        return [f"target       content PSNR >= {_number(target.get('psnr_content'))} dB not searched: {target['error']}"]
    chosen = target.get("chosen") or {}
    settings = ", ".join(f"{k} {_number(v)}" for k, v in (chosen.get("settings") or {}).items())
    return [f"target       content PSNR >= {_number(target.get('psnr_content'))} dB "
            f"{'met' if target.get('met') else 'NOT met'}: rung {chosen.get('rung')} ({settings}), "
            f"{len(target.get('tried') or [])} encodes tried"]


def json_safe(value):
    """Replace NaN/Inf (not valid JSON) by strings, recursively, so reports always serialise."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def to_json(report: dict) -> str:
    return json.dumps(json_safe(report), indent=2, allow_nan=False, default=str) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp name and rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_scene_reports(folder: Path, report: dict) -> list[Path]:
    """Write the text report, then the JSON report (the completion marker)."""
    text_path, json_path = folder / TEXT_NAME, folder / JSON_NAME
    write_atomic(text_path, scene_report_text(report))
    write_atomic(json_path, to_json(report))
    return [text_path, json_path]
