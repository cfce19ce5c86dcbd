"""``sogs-compressor launch`` / scripts/launch_processing_job.py against a real HTTP SageMaker endpoint (moto server).

The request goes over the wire (endpoint from AWS_ENDPOINT_URL_SAGEMAKER, SigV4, botocore's own validation).
moto keeps most of what it received (DescribeProcessingJob shows it) but drops ProcessingResources and
Environment, so in-process tests also capture the HTTP body botocore sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest

from sogs_compressor import launch

REPO = Path(__file__).resolve().parents[1]
ROLE = "arn:aws:iam::123456789012:role/SageMakerProcessingRole"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sogs-compressor:abc1234"


@pytest.fixture(scope="module")
def sagemaker_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(sagemaker_endpoint, monkeypatch, tmp_path):
    env = {
        "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env


def run_cli(args: list[str], env: dict[str, str], script: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "scripts" / "launch_processing_job.py")] if script else [
        sys.executable, "-m", "sogs_compressor", "launch"]
    return subprocess.run(command + args, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
                          cwd=REPO)


def base_args(name: str) -> list[str]:
    return ["--image", IMAGE, "--role", ROLE, "--input", "s3://scenes-bucket/scenes",
            "--output", "s3://scenes-bucket/sog/", "--job-name", name]


def test_cli_creates_job_with_expected_request_shape(aws_env):
    result = run_cli(base_args("sog-launch-shape") + [
        "--instance-type", "ml.g6.xlarge", "--instance-count", "3", "--volume-size", "200",
        "--max-runtime", "7200", "--env", "LOG_LEVEL=DEBUG", "--", "--preset", "max", "--layout", "bundle"],
        aws_env)
    assert result.returncode == 0, result.stderr
    assert "started arn:aws:sagemaker:eu-west-1:" in result.stdout

    job = boto3.client("sagemaker").describe_processing_job(ProcessingJobName="sog-launch-shape")
    assert job["RoleArn"] == ROLE
    assert job["AppSpecification"] == {
        "ImageUri": IMAGE,
        "ContainerArguments": ["--input", launch.INPUT_LOCAL_PATH, "--output", launch.OUTPUT_LOCAL_PATH,
                               "--preset", "max", "--layout", "bundle"],
    }
    (source,) = job["ProcessingInputs"]
    assert source["S3Input"] == {
        "S3Uri": "s3://scenes-bucket/scenes/",  # trailing slash added: "scenes" would also match "scenes-old"
        "LocalPath": "/opt/ml/processing/input/scenes",
        "S3DataType": "S3Prefix",
        "S3InputMode": "File",
        "S3DataDistributionType": "ShardedByS3Key",
    }
    (sink,) = job["ProcessingOutputConfig"]["Outputs"]
    assert sink["S3Output"] == {"S3Uri": "s3://scenes-bucket/sog/", "LocalPath": "/opt/ml/processing/output/sog",
                                "S3UploadMode": "EndOfJob"}
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}


def test_script_wait_prints_final_status(aws_env):
    result = run_cli(base_args("sog-launch-wait") + ["--wait", "--poll", "0.1", "--device", "cuda"], aws_env,
                     script=True)
    assert result.returncode == 0, result.stderr
    assert "sog-launch-wait: Completed" in result.stdout


@pytest.fixture
def sent_bodies(aws_env):
    """JSON bodies of the CreateProcessingJob calls botocore puts on the wire (in this process)."""
    boto3.setup_default_session()
    bodies: list[dict] = []

    def capture(request, **_):
        bodies.append(json.loads(request.body))

    boto3.DEFAULT_SESSION.events.register("before-send.sagemaker.CreateProcessingJob", capture)
    yield bodies
    boto3.DEFAULT_SESSION = None


def test_resources_environment_and_device_on_the_wire(sent_bodies):
    args = base_args("sog-launch-cpu") + ["--instance-type", "ml.c6i.4xlarge", "--instance-count", "3",
                                          "--volume-size", "200", "--device", "cpu", "--env", "LOG_LEVEL=INFO"]
    parser = launch.argparse.ArgumentParser()
    launch.add_arguments(parser)
    assert launch.run_launch(parser.parse_args(args)) == 0
    (body,) = sent_bodies
    assert body["ProcessingResources"] == {
        "ClusterConfig": {"InstanceCount": 3, "InstanceType": "ml.c6i.4xlarge", "VolumeSizeInGB": 200}}
    assert body["Environment"] == {"LOG_LEVEL": "INFO", "SOGS_DEVICE": "cpu"}
    assert body["ProcessingJobName"] == "sog-launch-cpu"
    # ...and the server accepted it.
    job = boto3.client("sagemaker").describe_processing_job(ProcessingJobName="sog-launch-cpu")
    assert job["ProcessingJobStatus"] == "Completed"


def test_unreachable_endpoint_is_one_line_aws_error(aws_env):
    env = {**aws_env, "AWS_ENDPOINT_URL_SAGEMAKER": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    result = run_cli(base_args("sog-launch-down"), env)
    assert result.returncode == launch.LaunchError.exit_code
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: CreateProcessingJob failed")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--instance-type", "ml.c6i.4xlarge"], "ml.c6i.4xlarge has no GPU"),
        (["--job-name", "bad_name.1"], "job name"),
        (["--role", "SageMakerRole"], "--role must be an IAM role ARN"),
        (["--input", "scenes-bucket/scenes"], "--input must be an s3:// URI"),
        (["--instance-count", "0"], "--instance-count"),
        (["--env", "1BAD=x"], "--env expects KEY=VALUE"),
    ],
)
def test_bad_arguments_fail_before_any_aws_call(extra, message, tmp_path):
    # No endpoint and no credentials: reaching AWS would fail differently (exit 30).
    env = {"AWS_ENDPOINT_URL_SAGEMAKER": "http://127.0.0.1:9", "AWS_REGION": "eu-west-1",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    result = run_cli(base_args("sog-launch-bad") + extra, env)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_print_request_sends_nothing(tmp_path):
    env = {"AWS_ENDPOINT_URL_SAGEMAKER": "http://127.0.0.1:9", "AWS_REGION": "eu-west-1"}
    result = run_cli(base_args("sog-launch-print") + ["--print-request"], env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ProcessingJobName"] == "sog-launch-print"


def test_instance_gpu_table():
    assert launch.instance_has_gpu("ml.g5.xlarge")
    assert launch.instance_has_gpu("ml.p5.4xlarge")
    assert launch.instance_has_gpu("ml.g4dn.12xlarge")
    assert not launch.instance_has_gpu("ml.c6i.4xlarge")
    assert not launch.instance_has_gpu("ml.m5.xlarge")
    assert not launch.instance_has_gpu("ml.p2.xlarge")  # K80: unusable with current PyTorch


def test_default_job_name_is_valid():
    name = launch.default_job_name(datetime(2026, 11, 26, 12, 0, 5, tzinfo=timezone.utc))
    assert name == "sogs-compress-20261126-120005"
    assert launch._JOB_NAME.match(name)


def test_summarize_shows_exit_message_and_failure_reason():
    start = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    text = launch.summarize({
        "ProcessingJobName": "j", "ProcessingJobStatus": "Failed",
        "ProcessingStartTime": start, "ProcessingEndTime": start + timedelta(seconds=95),
        "ExitMessage": "algo-1: scenes/a.ply: truncated file\nalgo-2: ok", "FailureReason": "AlgorithmError: exit 14",
    })
    assert text.splitlines()[0] == "j: Failed"
    assert "ran 95 s" in text
    assert "ExitMessage: algo-1: scenes/a.ply: truncated file" in text
    assert "    algo-2: ok" in text
    assert "FailureReason: AlgorithmError: exit 14" in text


class _ScriptedJob:
    """Answers DescribeProcessingJob with a scripted status sequence (tests the polling logic alone)."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.calls = 0

    def describe_processing_job(self, ProcessingJobName):  # noqa: N803 (boto3's argument name)
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        return {"ProcessingJobName": ProcessingJobName, "ProcessingJobStatus": status}


def test_wait_polls_until_terminal_status_and_reports_changes():
    client = _ScriptedJob(["InProgress", "InProgress", "Stopping", "Stopped"])
    seen, sleeps = [], []
    final = launch.wait_for_job(client, "j", poll_s=7, on_status=seen.append, sleep=sleeps.append)
    assert final["ProcessingJobStatus"] == "Stopped"
    assert seen == ["InProgress", "Stopping", "Stopped"]
    assert sleeps == [7, 7, 7]


def test_wait_gives_up_after_timeout():
    client = _ScriptedJob(["InProgress"])
    with pytest.raises(launch.LaunchError, match="gave up waiting"):
        launch.wait_for_job(client, "j", poll_s=0, timeout_s=0, sleep=lambda _: None)
