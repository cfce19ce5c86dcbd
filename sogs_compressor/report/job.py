"""The per-host job report: ``job_report-<host>.json`` / ``.txt`` in the output root (hosts share one prefix)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from sogs_compressor.report.scene import to_json, utc_now, write_atomic
from sogs_compressor.units import human_bytes

SCHEMA = "sogs-compressor/job-report/1"
DONE_STATUSES = ("ok", "reused")


def report_stem(host: str) -> str:
    """``job_report-<host>`` with the host reduced to safe file-name characters."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", host).strip("._") or "host"
    return f"job_report-{safe}"


def summarize(scenes: list[dict]) -> dict:
    """Sum the scene outcomes: counts by status, bytes, splats, dropped splats by reason."""
    status = Counter(s["status"] for s in scenes)
    done = [s for s in scenes if s["status"] in DONE_STATUSES]
    dropped: Counter = Counter()
    for s in done:
        dropped.update({k: int(v) for k, v in (s.get("dropped") or {}).items()})
    input_bytes = sum(int(s.get("input_bytes") or 0) for s in done)
    output_bytes = sum(int(s.get("output_bytes") or 0) for s in done)
    return {
        "scenes": len(scenes),
        "compressed": status.get("ok", 0),
        "reused": status.get("reused", 0),
        "failed": status.get("failed", 0),
        "interrupted": status.get("interrupted", 0),
        "not_started": status.get("not_started", 0),
        "files_processed": len(done),
        "input_bytes": input_bytes,
        "output_bytes": output_bytes,
        "ratio": round(input_bytes / output_bytes, 3) if output_bytes else 0.0,
        "splats_in": sum(int(s.get("splats_in") or 0) for s in done),
        "splats_out": sum(int(s.get("splats_out") or 0) for s in done),
        "dropped": dict(dropped),
        "scenes_beyond_tolerance": sum(1 for s in done if s.get("beyond_tolerance")),
    }


def failures_of(scenes: list[dict]) -> list[dict]:
    return [{"scene": s["scene"], **s["error"]} for s in scenes if s.get("error")]


def build_job_report(*, job: str, host: str, hosts: list[str], started_at: str, duration_s: float,
                     tool_version: str, config: dict, scenes: list[dict], exit_code: int, message: str,
                     sharding: dict | None = None) -> dict:
    """The report's content; ``sharding`` (several hosts listing S3 themselves) says which keys this host took
    and by which rule, so the hosts' reports together show the whole assignment."""
    return {
        "schema": SCHEMA,
        "job": job,
        "host": host,
        "hosts": hosts,
        "started_at": started_at,
        "finished_at": utc_now(),
        "duration_s": round(duration_s, 3),
        "tool_version": tool_version,
        "exit_code": exit_code,
        "message": message,
        "totals": summarize(scenes),
        "failures": failures_of(scenes),
        "config": config,
        "sharding": sharding,
        "scenes": scenes,
    }


def job_report_text(report: dict) -> str:
    t = report["totals"]
    dropped = ", ".join(f"{k} {v}" for k, v in t["dropped"].items() if v) or "none"
    lines = [
        f"job {report['job']}  host {report['host']} ({len(report['hosts'])} host(s))  exit {report['exit_code']}",
        f"{report['message']}",
        f"scenes       {t['scenes']}: {t['compressed']} compressed, {t['reused']} reused, {t['failed']} failed,"
        f" {t['interrupted']} interrupted, {t['not_started']} not started",
        f"bytes        {human_bytes(t['input_bytes'])} -> {human_bytes(t['output_bytes'])}  ratio {t['ratio']:.2f}x",
        f"splats       {t['splats_in']} in, {t['splats_out']} out, dropped: {dropped}",
        f"error bound  {t.get('scenes_beyond_tolerance', 0)} scene(s) with splats beyond the per-splat tolerances",
        f"time         {report['duration_s']:.1f} s  ({report['started_at']} .. {report['finished_at']})",
    ]
    sharding = report.get("sharding")
    if sharding:
        share = ", ".join(f"{h} {n}" for h, n in sharding["per_host"].items())
        lines.append(f"sharding     {len(sharding['keys'])} of {sharding['listed']} listed scene key(s) here "
                     f"(per host: {share}); rule: {sharding['rule']}")
    if report["failures"]:
        lines.append("failures:")
        lines += [f"  {f['scene']}: [{f['kind']}, exit {f['exit_code']}] {f['message']}" for f in report["failures"]]
    if report["scenes"]:
        lines.append("scenes:")
        for s in report["scenes"]:
            size = f"{human_bytes(s.get('input_bytes'))} -> {human_bytes(s.get('output_bytes'))}"
            lines.append(f"  {s['status']:<11} {s['scene']}  {size if s['status'] in DONE_STATUSES else ''}".rstrip())
            if s.get("beyond_tolerance"):
                lines.append("              WARNING: " + ", ".join(
                    f"{n} splats beyond the {name} bound" for name, n in s["beyond_tolerance"].items()))
            if s.get("output_shortened_from"):
                lines.append(f"              output folder {s['output']}/ (name shortened to fit the file system)")
    lines.append(f"tool         sogs-compressor {report['tool_version']}")
    return "\n".join(lines) + "\n"


def write_job_report(folder: Path, report: dict) -> list[Path]:
    """Write ``job_report-<host>.txt`` then ``.json`` into ``folder`` (atomically each)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = report_stem(report["host"])
    text_path, json_path = folder / f"{stem}.txt", folder / f"{stem}.json"
    write_atomic(text_path, job_report_text(report))
    write_atomic(json_path, to_json(report))
    return [text_path, json_path]
