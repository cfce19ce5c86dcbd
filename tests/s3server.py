"""Helpers for the job and S3 tests: a real S3 HTTP endpoint on 127.0.0.1, small 3DGS PLYs, a job runner.

The S3 server is moto's ThreadedMotoServer (real HTTP, SigV4, multipart): the code under test reaches it only
through ``AWS_ENDPOINT_URL_S3``, the same way it reaches AWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ENTRYPOINT = REPO / "compress_model.py"
PLY_PROPS = (["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)]
             + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def ply_bytes(n: int, seed: int = 0) -> bytes:
    """A binary little-endian 3DGS PLY with SH degree 1 and plausible values."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n, len(PLY_PROPS))).astype("<f4")
    data[:, 16:19] = rng.uniform(-5.0, -2.0, size=(n, 3))  # log scales
    header = ("ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n"
              + "".join(f"property float {p}\n" for p in PLY_PROPS) + "end_header\n")
    return header.encode() + data.tobytes()


def write_ply(path: Path, n: int = 300, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ply_bytes(n, seed))
    return path


def write_truncated_ply(path: Path, n: int = 300, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ply_bytes(n, seed)
    path.write_bytes(data[: len(data) - 1000])
    return path


def opt_ml_tree(root: Path, inputs: dict[str, str] | None = None, output: str = "sog", host: str = "algo-1",
                hosts: list[str] | None = None, job: str = "test-job", instance_type: str = "ml.c6i.xlarge") -> Path:
    """A ``/opt/ml``-like tree with real-shaped processingjobconfig.json and resourceconfig.json.

    ``inputs`` maps InputName -> S3Uri; LocalPaths are the real ``/opt/ml/processing/...`` ones (the job maps
    them under ``root``).
    """
    inputs = inputs or {"scenes": "s3://bucket/scenes/"}
    config = {
        "ProcessingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{job}",
        "ProcessingJobName": job,
        "AppSpecification": {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sog:abc"},
        "Environment": {"LOG_LEVEL": "INFO"},
        "ProcessingInputs": [
            {"InputName": name, "S3Input": {"LocalPath": f"/opt/ml/processing/input/{name}", "S3Uri": uri,
                                             "S3DataDistributionType": "ShardedByS3Key", "S3DataType": "S3Prefix",
                                             "S3InputMode": "File"}}
            for name, uri in inputs.items()],
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": output, "S3Output": {
            "LocalPath": f"/opt/ml/processing/output/{output}", "S3Uri": "s3://bucket/out/",
            "S3UploadMode": "EndOfJob"}}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": len(hosts or [host]),
                                                  "InstanceType": instance_type, "VolumeSizeInGB": 30}},
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerProcessingRole",
    }
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "processingjobconfig.json").write_text(json.dumps(config))
    (root / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts or [host]}))
    for name in inputs:
        (root / "processing" / "input" / name).mkdir(parents=True, exist_ok=True)
    (root / "processing" / "output" / output).mkdir(parents=True, exist_ok=True)
    return root


def job_env(root: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a job subprocess: no inherited AWS/SOGS/SM settings, CPU, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SOGS_", "SM_", "S3_", "LOG_"))}
    env.update({"SOGS_DEVICE": "cpu", "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"})
    if root is not None:
        env["SOGS_OPT_ML_ROOT"] = str(root)
    env.update(extra)
    return env


def run_job(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ENTRYPOINT), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def log_events(stdout: str) -> list[dict]:
    """Every JSON log line (non-JSON lines fail the test: stdout must stay machine-readable)."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@dataclass
class S3Endpoint:
    url: str

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_S3": self.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1 (a free port), for one test module."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Endpoint(f"http://{host}:{port}")
    finally:
        server.stop()
