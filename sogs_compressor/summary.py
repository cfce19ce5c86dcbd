"""The short human summary ``sogs-compressor compress`` prints."""

from __future__ import annotations

import shlex
from pathlib import Path
from urllib.parse import quote

from sogs_compressor.result import CompressionResult
from sogs_compressor.units import human_bytes
from sogs_compressor.verify.metrics import beyond_warnings


def human_summary(result: CompressionResult) -> str:
    counts = result.counts
    dropped = counts.get("dropped", {})
    dropped_total = sum(dropped.values())
    lines = [
        f"{result.input_path} ({result.input_format}, {human_bytes(result.input_bytes)}) -> {human_bytes(result.output_bytes)}"
        f"  ratio {result.ratio:.1f}x",
        f"  splats: {counts.get('input', 0)} in, {dropped_total} dropped"
        + (f" ({', '.join(f'{k} {v}' for k, v in dropped.items() if v)})" if dropped_total else "")
        + f", {counts.get('output', 0)} out; SH degree {result.sh_degree_in} -> {result.sh_degree_out}"
        + (f", palette {result.palette_size}" if result.palette_size else ""),
    ]
    if counts.get("quaternions_replaced"):
        lines.append(f"  {counts['quaternions_replaced']} all-zero rotations replaced by identity")
    if result.errors:
        e = result.errors
        lines.append(
            f"  errors: position {e['position_rel_median']:.2e}/{e['position_rel_max']:.2e} (median/max of bbox),"
            f" rotation {e['rotation_deg_median']:.2f} deg median, f_dc rmse {e['f_dc_rmse']:.4f},"
            f" opacity mae {e['opacity_mae']:.4f}, log-scale rmse {e['log_scale_rmse']:.4f},"
            f" f_rest rmse {e['f_rest_rmse']:.4f}"
        )
        if "log_scale_beyond" in e:
            lines.append(
                f"  worst: log-scale growth {e['log_scale_growth_max']:.3f} (p99 {e['log_scale_growth_p99']:.3f}),"
                f" f_dc {e['f_dc_abs_max']:.3f} (p99 {e['f_dc_abs_p99']:.3f}), opacity +{e['opacity_growth_max']:.4f},"
                f" rotation {e['rotation_deg_max']:.2f} deg, position {e['position_cells_max']:.1f} grid cells")
            lines += [f"  WARNING: {warning}" for warning in beyond_warnings(e)]
    if result.quality:
        from sogs_compressor.report.scene import quality_lines

        preview = next((f.path for f in result.output_files if f.role == "preview"), None)
        lines += [f"  {line.split(None, 1)[0]}: {line.split(None, 1)[1]}"
                  for line in quality_lines(result.quality, preview)]
    if result.lod:
        levels = result.lod["levels"]
        given = ", as given: one input per level" if result.lod.get("input") == "levels" else ""
        if result.lod.get("palette") == "level":
            given += ", one SH palette per level"
        lines.append(f"  levels: {len(levels)} in {result.lod['chunks']} chunks (lod-meta.json "
                     f"{human_bytes(result.lod['lod_meta_bytes'])}{given})")
        from sogs_compressor.report.scene import level_quality_text

        for lvl in levels:
            quality = level_quality_text(lvl)
            lines.append(f"    level {lvl['level']}: {lvl['splats']} splats, {lvl['chunks']} chunks, "
                         f"{human_bytes(lvl['bytes'])}" + (f"; {quality}" if quality else ""))
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items() if k != "total")
    lines.append(f"  time {result.timings.get('total', 0):.2f}s on {result.device_name} ({timing})")
    for f in result.output_files:
        if f.role in ("bundle", "lod-meta") or (f.role == "meta" and not result.lod):
            lines.append(f"  wrote {f.path}")
        elif f.role == "viewer":  # browsers fetch nothing into file:// pages
            page = Path(f.path)
            lines.append(f"  wrote {f.path} (to view: python -m http.server -d {shlex.quote(str(page.parent))}, "
                         f"then open http://localhost:8000/{quote(page.name)})")
    return "\n".join(lines)
