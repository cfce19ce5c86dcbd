"""``sogs-compressor launch``: start the compression container as a SageMaker Processing job (boto3).

The request is built by pure functions (``build_request``) so its shape can be checked without AWS; the command
then calls ``create_processing_job``, and with ``--wait`` polls until the job ends and prints its status and
ExitMessage. Inputs are sharded by S3 key across instances; every instance writes to the same output prefix (the
job names its per-host reports apart).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from sogs_compressor.errors import SogsError

INPUT_LOCAL_PATH = "/opt/ml/processing/input/scenes"
OUTPUT_LOCAL_PATH = "/opt/ml/processing/output/sog"
TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
DISTRIBUTIONS = ("ShardedByS3Key", "FullyReplicated")
UPLOAD_MODES = ("EndOfJob", "Continuous")

# Processing instance families with NVIDIA GPUs (botocore's ProcessingInstanceType enum); p2 (K80) is left out:
# current PyTorch builds cannot use it.
GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "g7e", "p3", "p4d", "p4de", "p5", "p5e", "p5en")
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ENV_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,255}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$")
_INSTANCE_TYPE = re.compile(r"^ml\.([a-z0-9]+)\.[a-z0-9]+$")


class LaunchError(SogsError):
    """The AWS API refused or failed the launch (credentials, permissions, throttling, bad request)."""

    exit_code = 30
    kind = "aws_error"


def usage_error(message: str) -> SogsError:
    """A SogsError that exits 2, like argparse's own usage errors."""
    error = SogsError(message)
    error.exit_code = 2
    error.kind = "usage"
    return error


def default_job_name(now: datetime | None = None) -> str:
    """``sogs-compress-YYYYmmdd-HHMMSS`` in UTC: valid, sortable and unique enough for manual launches."""
    now = now or datetime.now(timezone.utc)
    return "sogs-compress-" + now.strftime("%Y%m%d-%H%M%S")


def instance_has_gpu(instance_type: str) -> bool:
    """Whether a Processing instance type has an NVIDIA GPU (``ml.c6i.4xlarge``: no; ``ml.g5.xlarge``: yes)."""
    match = _INSTANCE_TYPE.match(instance_type)
    return bool(match) and match.group(1) in GPU_FAMILIES


def s3_prefix(uri: str, what: str) -> str:
    """Check an ``s3://bucket/prefix`` URI and end it with ``/`` (``s3://b/scenes`` would also match ``scenes-old``)."""
    if not uri.startswith("s3://"):
        raise usage_error(f"{what} must be an s3:// URI, not {uri!r}")
    bucket = uri[len("s3://"):].split("/", 1)[0]
    if not 3 <= len(bucket) <= 63:
        raise usage_error(f"{what} {uri!r} has no valid bucket name")
    return uri if uri.endswith("/") else uri + "/"


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings -> dict, checked against CreateProcessingJob's limits."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _ENV_KEY.match(key):
            raise usage_error(f"--env expects KEY=VALUE with KEY like [A-Za-z_][A-Za-z0-9_]*, not {pair!r}")
        if len(value) > 256:
            raise usage_error(f"--env {key}: values are limited to 256 characters by SageMaker")
        env[key] = value
    return env


def build_request(
    *,
    image_uri: str,
    role_arn: str,
    input_uri: str,
    output_uri: str,
    job_name: str,
    instance_type: str = "ml.g5.xlarge",
    instance_count: int = 1,
    volume_size_gb: int = 100,
    max_runtime_s: int = 86400,
    distribution: str = "ShardedByS3Key",
    upload_mode: str = "EndOfJob",
    environment: dict[str, str] | None = None,
    device: str | None = None,
    job_arguments: Sequence[str] = (),
) -> dict[str, Any]:
    """The CreateProcessingJob request for one compression job, validated against the API's documented limits.

    The container gets explicit ``--input``/``--output`` local paths so it does not depend on defaults, then
    ``job_arguments`` (any other compress_model.py flags).
    """
    if not _JOB_NAME.match(job_name):
        raise usage_error(f"job name {job_name!r}: 1-63 letters, digits and hyphens, starting with a letter or digit")
    if not image_uri or len(image_uri) > 255:
        raise usage_error("--image must be an image URI of at most 255 characters")
    if not _ROLE_ARN.match(role_arn):
        raise usage_error(f"--role must be an IAM role ARN (arn:aws:iam::<account>:role/<name>), not {role_arn!r}")
    if not _INSTANCE_TYPE.match(instance_type):
        raise usage_error(f"--instance-type must look like ml.g5.xlarge, not {instance_type!r}")
    if not 1 <= instance_count <= 100:
        raise usage_error("--instance-count must be 1..100")
    if not 1 <= volume_size_gb <= 16384:
        raise usage_error("--volume-size must be 1..16384 GB")
    if not 1 <= max_runtime_s <= 777600:
        raise usage_error("--max-runtime must be 1..777600 seconds (9 days)")
    if distribution not in DISTRIBUTIONS:
        raise usage_error(f"--distribution must be one of {', '.join(DISTRIBUTIONS)}")
    if upload_mode not in UPLOAD_MODES:
        raise usage_error(f"--upload-mode must be one of {', '.join(UPLOAD_MODES)}")
    wants_gpu = device is None or device.startswith("cuda")
    if wants_gpu and not instance_has_gpu(instance_type):
        raise usage_error(
            f"{instance_type} has no GPU, and the production image requires one: choose a GPU type "
            "(ml.g5.xlarge, ml.g6.xlarge, ml.g4dn.xlarge, ml.p5.4xlarge) or pass --device cpu "
            "(best with the -minimal image)"
        )
    env = dict(environment or {})
    if device is not None:
        env["SOGS_DEVICE"] = device
    if len(env) > 100:
        raise usage_error("at most 100 environment variables can be passed to a Processing job")
    arguments = ["--input", INPUT_LOCAL_PATH, "--output", OUTPUT_LOCAL_PATH, *job_arguments]
    if len(arguments) > 100:
        raise usage_error("at most 100 container arguments can be passed to a Processing job")

    request: dict[str, Any] = {
        "ProcessingJobName": job_name,
        "RoleArn": role_arn,
        "AppSpecification": {"ImageUri": image_uri, "ContainerArguments": arguments},
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": instance_count,
                "InstanceType": instance_type,
                "VolumeSizeInGB": volume_size_gb,
            }
        },
        "ProcessingInputs": [{
            "InputName": "scenes",
            "S3Input": {
                "S3Uri": s3_prefix(input_uri, "--input"),
                "LocalPath": INPUT_LOCAL_PATH,
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": distribution,
            },
        }],
        "ProcessingOutputConfig": {"Outputs": [{
            "OutputName": "sog",
            "S3Output": {
                "S3Uri": s3_prefix(output_uri, "--output"),
                "LocalPath": OUTPUT_LOCAL_PATH,
                "S3UploadMode": upload_mode,
            },
        }]},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_s},
    }
    if env:
        request["Environment"] = env
    return request


def summarize(description: dict[str, Any]) -> str:
    """Status, timing and the container's ExitMessage / SageMaker's FailureReason, for people to read."""
    lines = [f"{description.get('ProcessingJobName', '?')}: {description.get('ProcessingJobStatus', '?')}"]
    start, end = description.get("ProcessingStartTime"), description.get("ProcessingEndTime")
    if isinstance(start, datetime) and isinstance(end, datetime):
        lines.append(f"  ran {(end - start).total_seconds():.0f} s")
    for key in ("ExitMessage", "FailureReason"):
        text = (description.get(key) or "").strip()
        if text:
            lines.append(f"  {key}: " + text.replace("\n", "\n    "))
    return "\n".join(lines)


def _call(what: str, function: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a boto3 method, turning AWS failures into one-line LaunchErrors."""
    import botocore.exceptions as bex

    try:
        return function(**kwargs)
    except bex.NoCredentialsError:
        raise LaunchError("no AWS credentials found: run 'aws configure', set AWS_PROFILE, or use an IAM role") from None
    except bex.ClientError as error:
        info = error.response.get("Error", {})
        raise LaunchError(f"{what} failed: {info.get('Code', 'error')}: {info.get('Message', error)}") from None
    except bex.ParamValidationError as error:
        raise LaunchError(f"{what}: invalid request: {' '.join(str(error).split())}") from None
    except bex.BotoCoreError as error:
        raise LaunchError(f"{what} failed: {error}") from None


def sagemaker_client(region: str | None = None) -> Any:
    """A boto3 SageMaker client (endpoint overridable with AWS_ENDPOINT_URL_SAGEMAKER, as boto3 does)."""
    import boto3
    import botocore.exceptions as bex

    try:
        return boto3.client("sagemaker", region_name=region)
    except bex.NoRegionError:
        raise usage_error("no AWS region: pass --region or set AWS_REGION") from None


def start_job(client: Any, request: dict[str, Any]) -> str:
    """Create the processing job; returns its ARN."""
    response = _call("CreateProcessingJob", client.create_processing_job, **request)
    return response["ProcessingJobArn"]


def wait_for_job(
    client: Any,
    job_name: str,
    poll_s: float = 30.0,
    timeout_s: float | None = None,
    on_status: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll DescribeProcessingJob until Completed/Failed/Stopped; returns the final description."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last = None
    while True:
        description = _call("DescribeProcessingJob", client.describe_processing_job, ProcessingJobName=job_name)
        status = description.get("ProcessingJobStatus", "")
        if status != last and on_status:
            on_status(status)
        last = status
        if status in TERMINAL_STATUSES:
            return description
        if deadline is not None and time.monotonic() >= deadline:
            raise LaunchError(f"gave up waiting for {job_name} after {timeout_s:.0f} s (still {status}); it keeps running")
        sleep(poll_s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The launch flags (shared by ``sogs-compressor launch`` and ``scripts/launch_processing_job.py``)."""
    parser.add_argument("--image", required=True, help="ECR image URI, ideally the commit tag the deploy script printed")
    parser.add_argument("--role", required=True, help="IAM role ARN SageMaker runs the job as (needs S3 access)")
    parser.add_argument("--input", required=True, metavar="S3_URI", help="s3:// prefix holding the .ply scenes")
    parser.add_argument("--output", required=True, metavar="S3_URI", help="s3:// prefix the SOG outputs go to")
    parser.add_argument("--job-name", default=None, help="default: sogs-compress-<UTC time>")
    parser.add_argument("--instance-type", default="ml.g5.xlarge", help="default: ml.g5.xlarge (A10G)")
    parser.add_argument("--instance-count", type=int, default=1, help="instances; input files are sharded by key")
    parser.add_argument("--volume-size", type=int, default=100, metavar="GB", help="EBS volume per instance")
    parser.add_argument("--max-runtime", type=int, default=86400, metavar="SECONDS", help="default: 24 h")
    parser.add_argument("--distribution", choices=DISTRIBUTIONS, default="ShardedByS3Key")
    parser.add_argument("--upload-mode", choices=UPLOAD_MODES, default="EndOfJob",
                        help="Continuous ships outputs while the job runs")
    parser.add_argument("--device", default=None,
                        help="sets SOGS_DEVICE in the container (cpu for CPU instance types)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="container environment")
    parser.add_argument("--region", default=None, help="AWS region (default: the boto3 chain, e.g. AWS_REGION)")
    parser.add_argument("--wait", action="store_true", help="wait for the job to end, print status and ExitMessage")
    parser.add_argument("--poll", type=float, default=30.0, metavar="SECONDS", help="status poll interval with --wait")
    parser.add_argument("--wait-timeout", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--print-request", action="store_true", help="print the request as JSON and do not send it")
    parser.add_argument("job_args", nargs=argparse.REMAINDER, metavar="-- JOB_ARGS",
                        help="further compress_model.py flags, after --")


def run_launch(args: argparse.Namespace) -> int:
    """Handler of ``sogs-compressor launch``: 0 when started (or, with --wait, Completed), 1 if it failed."""
    import json

    job_args = list(args.job_args)
    if job_args and job_args[0] == "--":
        job_args = job_args[1:]
    request = build_request(
        image_uri=args.image, role_arn=args.role, input_uri=args.input, output_uri=args.output,
        job_name=args.job_name or default_job_name(), instance_type=args.instance_type,
        instance_count=args.instance_count, volume_size_gb=args.volume_size, max_runtime_s=args.max_runtime,
        distribution=args.distribution, upload_mode=args.upload_mode, environment=parse_env(args.env),
        device=args.device, job_arguments=job_args,
    )
    if args.print_request:
        print(json.dumps(request, indent=2))
        return 0
    client = sagemaker_client(args.region)
    arn = start_job(client, request)
    name = request["ProcessingJobName"]
    quiet = getattr(args, "quiet", False)
    if not quiet:
        print(f"started {arn}")
        print(f"logs: CloudWatch group /aws/sagemaker/ProcessingJobs, streams {name}/algo-*")
    if not args.wait:
        return 0
    on_status = None if quiet else (lambda status: print(f"{name}: {status}", file=sys.stderr))
    description = wait_for_job(client, name, poll_s=args.poll, timeout_s=args.wait_timeout, on_status=on_status)
    print(summarize(description))
    return 0 if description.get("ProcessingJobStatus") == "Completed" else 1


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``sogs-compressor launch`` to the CLI."""
    parser = subparsers.add_parser(
        "launch", parents=[common], help="run the compression image as a SageMaker Processing job",
        description="Start the compression image as a SageMaker Processing job (boto3 CreateProcessingJob): "
                    "inputs sharded by S3 key across instances, outputs uploaded to one S3 prefix.",
        epilog="exit codes: 0 started (with --wait: Completed), 1 job Failed/Stopped, 2 usage error, "
               "30 AWS API error",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run_launch)
