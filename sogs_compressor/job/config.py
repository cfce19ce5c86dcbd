"""The job's resolved configuration, highest precedence first:

1. command-line flags;
2. environment: ``SOGS_*``, ``S3_INPUT_URI`` / ``S3_OUTPUT_URI``, ``LOG_LEVEL``, then the legacy
   ``SM_CHANNEL_INPUT`` / ``SM_OUTPUT_DATA_DIR`` / ``SM_CURRENT_HOST`` / ``SM_HOSTS`` (kept for old pipelines);
3. ``<root>/config/processingjobconfig.json`` and ``resourceconfig.json`` (root: ``--opt-ml-root``,
   ``$SOGS_OPT_ML_ROOT`` or ``/opt/ml``);
4. defaults ``<root>/processing/input`` and ``<root>/processing/output``.

Paths in the JSON files that start with ``/opt/ml/`` are moved under ``root`` when root is elsewhere (tests, local
runs of a copied config).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sogs_compressor.errors import SogsError
from sogs_compressor.fetch.uri import is_s3_uri
from sogs_compressor.job.log import redact_env
from sogs_compressor.options import CompressOptions

DEFAULT_ROOT = "/opt/ml"
CONFIG_LIMIT = 4 * 1024 * 1024
ENV_PREFIXES = ("SOGS_", "S3_", "SM_", "LOG_", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
CODE_INPUT_NAMES = ("code",)  # ScriptProcessor's code channel is not a scene input


class ConfigError(SogsError):
    """Contradictory or unreadable job configuration."""

    exit_code = 2
    kind = "usage"


@dataclass
class JobConfig:
    root: Path
    inputs: list[str]
    output: str
    message_file: Path
    job_name: str = "local"
    host: str = "local"
    hosts: list[str] = field(default_factory=lambda: ["local"])
    instance_type: str | None = None
    output_s3_uri: str | None = None  # where SageMaker uploads ``output`` (informational)
    distribution: list[str] = field(default_factory=list)
    fail_fast: bool = False
    force: bool = False
    workers: int | None = None
    shard: bool = True
    log_level: str = "INFO"
    work_dir: Path | None = None
    options: CompressOptions = field(default_factory=CompressOptions)
    sources: dict = field(default_factory=dict)  # setting -> where its value came from
    environment: dict = field(default_factory=dict)  # redacted

    @property
    def host_index(self) -> int:
        return self.hosts.index(self.host) if self.host in self.hosts else 0

    def public(self) -> dict:
        """JSON-safe and secret-free: logged once and written into the job report."""
        return {
            "root": str(self.root), "inputs": self.inputs, "output": self.output,
            "output_s3_uri": self.output_s3_uri, "message_file": str(self.message_file),
            "job_name": self.job_name, "host": self.host, "hosts": self.hosts,
            "instance_type": self.instance_type, "distribution": self.distribution,
            "fail_fast": self.fail_fast, "force": self.force, "workers": self.workers, "shard": self.shard,
            "log_level": self.log_level, "work_dir": str(self.work_dir) if self.work_dir else None,
            "options": self.options.to_dict(), "sources": self.sources, "environment": self.environment,
        }


def env_flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def read_json_file(path: Path) -> dict | None:
    """A small JSON object from disk, None when absent; a clear ConfigError when unreadable."""
    if not path.is_file():
        return None
    if path.stat().st_size > CONFIG_LIMIT:
        raise ConfigError(f"{path} is larger than {CONFIG_LIMIT} bytes; not a SageMaker config file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a JSON object")
    return data


def host_sort_key(name: str) -> tuple:
    """``algo-2`` before ``algo-10``: sort by the numeric suffix, not as text."""
    match = re.match(r"^(.*?)(\d+)$", name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def remap(path: str, root: Path) -> str:
    """Move an ``/opt/ml/...`` path under ``root``."""
    if str(root) != DEFAULT_ROOT and (path == DEFAULT_ROOT or path.startswith(DEFAULT_ROOT + "/")):
        return str(root) + path[len(DEFAULT_ROOT):]
    return path


def processing_inputs(config: dict, root: Path) -> list[tuple[str, str, str]]:
    """(name, local path, distribution) of every ProcessingInput with an S3Input (code channel excluded)."""
    found = []
    for item in config.get("ProcessingInputs") or []:
        s3 = (item or {}).get("S3Input") or {}
        name = str(item.get("InputName") or "")
        if s3.get("LocalPath") and name not in CODE_INPUT_NAMES:
            found.append((name, remap(str(s3["LocalPath"]), root), str(s3.get("S3DataDistributionType") or "")))
    return found


def processing_output(config: dict, root: Path, wanted: str | None) -> tuple[str, str | None] | None:
    """(local path, S3 URI) of the output named ``wanted``, else the first output."""
    outputs = ((config.get("ProcessingOutputConfig") or {}).get("Outputs")) or []
    chosen = [o for o in outputs if wanted and o.get("OutputName") == wanted] or outputs[:1]
    if wanted and not [o for o in outputs if o.get("OutputName") == wanted]:
        names = ", ".join(str(o.get("OutputName")) for o in outputs) or "none"
        raise ConfigError(f"no ProcessingOutput named {wanted!r} in processingjobconfig.json (have: {names})")
    if not chosen:
        return None
    s3 = chosen[0].get("S3Output") or {}
    if not s3.get("LocalPath"):
        return None
    return remap(str(s3["LocalPath"]), root), s3.get("S3Uri")


def first(*candidates: tuple[str, object]) -> tuple[str, object]:
    """The first (source, value) whose value is set."""
    for source, value in candidates:
        if value not in (None, "", []):
            return source, value
    return "default", None


CODEC_ENV = (  # (variable, CompressOptions field, type, flag)
    ("SOGS_DEVICE", "device", str, "--device"), ("SOGS_LAYOUT", "layout", str, "--layout"),
    ("SOGS_PRESET", "preset", str, "--preset"), ("SOGS_VIEWER", "viewer", str, "--viewer"),
    ("SOGS_VIEWER_ENGINE", "viewer_engine", str, "--viewer-engine"), ("SOGS_SH_BANDS", "sh_bands", int, "--sh-bands"),
    ("SOGS_SEED", "seed", int, "--seed"), ("SOGS_LOD_LEVELS", "lod_levels", int, "--lod-levels"),
    ("SOGS_LOD_MIN_SPLATS", "lod_min_splats", int, "--lod-min-splats"),
    ("SOGS_LOD_CHUNK_COUNT", "lod_chunk_count", int, "--lod-chunk-count"),
    ("SOGS_LOD_CHUNK_EXTENT", "lod_chunk_extent", float, "--lod-chunk-extent"),
    ("SOGS_LOD_CHUNK_MIN", "lod_chunk_min", int, "--lod-chunk-min"),
    ("SOGS_LOD_PALETTE", "lod_palette", str, "--lod-palette"),
)
"""Codec settings the environment may give, each as its flag (which wins over it)."""


def codec_base_from_env(env: Mapping[str, str]) -> CompressOptions:
    """Codec settings from the ``CODEC_ENV`` variables; a bad value is a ConfigError naming the variable."""
    opts = CompressOptions()
    for name, attr, kind, flag in CODEC_ENV:
        text = (env.get(name) or "").strip()
        if not text:
            continue
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ConfigError(f"{name} ({flag}) must be {what}, not {env[name]!r}") from None
        try:  # checked alone, so the message names the variable (flags may still set the others)
            dataclasses.replace(CompressOptions(), **{attr: value}).validate()
        except SogsError as error:
            raise ConfigError(f"{name}: {error}") from None
        setattr(opts, attr, value)
    return opts


def load_config(args: argparse.Namespace, env: Mapping[str, str]) -> JobConfig:
    """Resolve every setting from flags, environment and the SageMaker JSON files (see module docstring)."""
    from sogs_compressor.codec_args import options_from_args

    root = Path(getattr(args, "opt_ml_root", None) or env.get("SOGS_OPT_ML_ROOT") or DEFAULT_ROOT)
    processing = read_json_file(root / "config" / "processingjobconfig.json") or {}
    resource = read_json_file(root / "config" / "resourceconfig.json") or {}
    sources: dict[str, str] = {}

    pc_inputs = processing_inputs(processing, root)
    env_input = env.get("SOGS_INPUT") or env.get("S3_INPUT_URI")
    src, inputs = first(("flag", list(getattr(args, "input", None) or [])),
                        ("env", [env_input] if env_input else []),
                        ("env:SM_CHANNEL_INPUT", [env["SM_CHANNEL_INPUT"]] if env.get("SM_CHANNEL_INPUT") else []),
                        ("processingjobconfig.json", [p for _, p, _ in pc_inputs]))
    if not inputs:
        inputs = [str(root / "processing" / "input")]
    sources["inputs"] = src
    distribution = [d for _, _, d in pc_inputs] if src == "processingjobconfig.json" else []

    wanted_output = getattr(args, "output_name", None) or env.get("SOGS_OUTPUT_NAME")
    pc_output = processing_output(processing, root, wanted_output) if processing else None
    src, output = first(("flag", getattr(args, "output", None)),
                        ("env", env.get("SOGS_OUTPUT") or env.get("S3_OUTPUT_URI")),
                        ("env:SM_OUTPUT_DATA_DIR", env.get("SM_OUTPUT_DATA_DIR")),
                        ("processingjobconfig.json", pc_output[0] if pc_output else None))
    sources["output"] = src
    output = str(output or root / "processing" / "output")
    output_s3 = output if is_s3_uri(output) else (pc_output[1] if pc_output and src == "processingjobconfig.json" else None)

    hosts = [str(h) for h in resource.get("hosts") or []]
    if env.get("SM_HOSTS"):
        try:
            hosts = [str(h) for h in json.loads(env["SM_HOSTS"])]
        except (json.JSONDecodeError, TypeError):
            raise ConfigError(f"SM_HOSTS must be a JSON list of host names, not {env['SM_HOSTS']!r}") from None
    src, host = first(("flag", getattr(args, "host", None)),
                      ("env", env.get("SOGS_HOST")),
                      ("env:SM_CURRENT_HOST", env.get("SM_CURRENT_HOST")),
                      ("resourceconfig.json", resource.get("current_host")))
    sources["host"] = src
    host = str(host or "local")
    hosts = sorted(set(hosts) | {host}, key=host_sort_key)

    cluster = ((processing.get("ProcessingResources") or {}).get("ClusterConfig")) or {}
    job_name = env.get("SOGS_JOB_NAME") or processing.get("ProcessingJobName") or "local"

    workers = getattr(args, "workers", None)
    if workers is None and env.get("SOGS_WORKERS"):
        try:
            workers = int(env["SOGS_WORKERS"])
        except ValueError:
            raise ConfigError(f"SOGS_WORKERS must be an integer, not {env['SOGS_WORKERS']!r}") from None
    if workers is not None and workers < 1:
        raise ConfigError("--workers must be >= 1")

    message = getattr(args, "message_file", None) or env.get("SOGS_MESSAGE_FILE") or root / "output" / "message"
    level = (getattr(args, "log_level", None) or env.get("LOG_LEVEL") or "INFO").upper()
    work_dir = env.get("SOGS_WORK_DIR")

    try:
        options = options_from_args(args, codec_base_from_env(env))
    except ConfigError:
        raise
    except SogsError as error:  # flags that contradict each other or the environment (e.g. lod and --target-psnr)
        raise ConfigError(str(error)) from None
    return JobConfig(
        root=root, inputs=[str(i) for i in inputs], output=output, message_file=Path(message),
        job_name=str(job_name), host=host, hosts=hosts,
        instance_type=cluster.get("InstanceType") or env.get("SOGS_INSTANCE_TYPE"),
        output_s3_uri=output_s3, distribution=distribution,
        fail_fast=bool(getattr(args, "fail_fast", False)) or env_flag(env.get("SOGS_FAIL_FAST")),
        force=bool(getattr(args, "force", False)) or env_flag(env.get("SOGS_FORCE")),
        workers=workers, shard=(env.get("SOGS_SHARD") or "auto").lower() != "none",
        log_level=level, work_dir=Path(work_dir) if work_dir else None,
        options=options, sources=sources, environment=redact_env(dict(env), ENV_PREFIXES),
    )


def early_paths(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[Path, Path, str]:
    """Root, message file and host known before the full config loads (so even a config error is reported)."""
    root = Path(getattr(args, "opt_ml_root", None) or env.get("SOGS_OPT_ML_ROOT") or DEFAULT_ROOT)
    message = Path(getattr(args, "message_file", None) or env.get("SOGS_MESSAGE_FILE") or root / "output" / "message")
    host = getattr(args, "host", None) or env.get("SOGS_HOST") or env.get("SM_CURRENT_HOST") or "local"
    if host == "local":
        try:
            resource = json.loads((root / "config" / "resourceconfig.json").read_text(encoding="utf-8"))
            host = str(resource.get("current_host") or host)
        except (OSError, ValueError, AttributeError):
            pass
    return root, message, host

