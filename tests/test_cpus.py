"""CPU pool sizing: affinity, cgroup quotas (v1 and v2) and $OMP_NUM_THREADS."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sogs_compressor import cpus


@pytest.mark.parametrize(("content", "expected"), [("max 100000", None), ("200000 100000", 2.0),
                                                    ("150000 100000", 1.5), ("garbage", None)])
def test_cgroup_v2_quota(tmp_path, content, expected) -> None:
    (tmp_path / "cpu.max").write_text(content + "\n")
    assert cpus.cgroup_cpu_limit(tmp_path / "cpu.max", tmp_path / "none", tmp_path / "none") == expected


@pytest.mark.parametrize(("quota", "period", "expected"), [("-1", "100000", None), ("300000", "100000", 3.0)])
def test_cgroup_v1_quota(tmp_path, quota, period, expected) -> None:
    (tmp_path / "q").write_text(quota)
    (tmp_path / "p").write_text(period)
    assert cpus.cgroup_cpu_limit(tmp_path / "missing", tmp_path / "q", tmp_path / "p") == expected


def test_usable_cpus_is_capped_by_the_quota(monkeypatch) -> None:
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 1.5)
    assert cpus.usable_cpus() == min(2, len(os.sched_getaffinity(0)))
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: None)
    assert cpus.usable_cpus() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("value", "expected"), [("3", 3), ("0", None), ("x", None), ("", None)])
def test_thread_count_honours_omp_num_threads(monkeypatch, value, expected) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert cpus.thread_count() == (expected or cpus.usable_cpus())


def test_torch_threads_follow_the_policy_and_openmp_waits_passively() -> None:
    code = ("import os, sogs_compressor.device as d, torch; "
            "print(torch.get_num_threads(), os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == [str(cpus.usable_cpus()), "PASSIVE"]
    env.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="ACTIVE")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["1", "ACTIVE"]
