"""Structure-aware fuzzing of every reader and command (tests/fuzzcases.py builds the inputs, tests/fuzzrun.py runs
and checks them): documented exit code, one stderr line on failure, no output on failure, bounded memory and time.

CI runs ``SOGS_FUZZ_CASES`` cases (default 500, spread evenly over the five kinds) in in-process drivers, and a
few more through real ``python -m sogs_compressor`` processes. To hunt further::

    SOGS_FUZZ_CASES=50000 SOGS_FUZZ_START=1000 pytest tests/test_fuzz.py    # or: python tests/fuzzrun.py --help

A failure names its case (``kind:seed``) and mutations; ``python tests/fuzzrun.py --kinds KIND --start SEED
--cases 1 --keep DIR`` rebuilds it (and keeps it) in DIR.
"""

from __future__ import annotations

import os

import pytest
from fuzzcases import KINDS, build_case, write_seeds
from fuzzrun import Outcome, check, plan, run_cases, run_subprocess_case, summary

CASES = int(os.environ.get("SOGS_FUZZ_CASES", "500"))
START = int(os.environ.get("SOGS_FUZZ_START", "0"))
PER_KIND = max(1, CASES // len(KINDS))
SUBPROCESS = {  # (seed offset, command) per kind: each command, each kind, at least once through a real process
    "ply_binary": ((0, "info"), (1, "compress")),
    "ply_ascii": ((0, "decompress"),),
    "compressed_ply": ((0, "info"), (1, "decompress")),
    "sog_bundle": ((0, "decompress"), (1, "compress")),
    "sog_folder": ((0, "info"),),
    "sog_lod": ((0, "decompress"), (1, "info")),
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return write_seeds(tmp_path_factory.mktemp("fuzz") / "seeds")


@pytest.fixture(scope="module")
def outcomes(seeds):
    return run_cases(plan(KINDS, PER_KIND, START), seeds, seeds.parent, workers=2)


@pytest.mark.parametrize("kind", KINDS)
def test_fuzzed_inputs_keep_the_promise(outcomes, kind):
    mine = [o for o in outcomes if o.case.startswith(kind + ":")]
    assert len(mine) == PER_KIND
    assert not any(o.problems for o in mine), summary(mine)


@pytest.mark.parametrize("kind", KINDS)
def test_fuzzed_inputs_through_a_real_process(seeds, kind):
    found = [run_subprocess_case(kind, START + offset, command, seeds, seeds.parent / "sub")
             for offset, command in SUBPROCESS[kind]]
    assert not any(o.problems for o in found), summary(found)


def test_cases_are_reproducible(seeds, tmp_path):
    for kind in KINDS:
        first = build_case(kind, 7, seeds, tmp_path / "a")
        second = build_case(kind, 7, seeds, tmp_path / "b")
        assert first.mutations == second.mutations and first.command == second.command
        a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*"))
        assert a == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*"))
        for path in a:
            if (tmp_path / "a" / path).is_file() and not (tmp_path / "a" / path).is_symlink():
                assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes(), path


@pytest.mark.parametrize(
    ("returncode", "stderr", "files", "problem"),
    [
        (1, "error: internal error: KeyError\n", (), "exit code 1"),
        (17, "warning: x\nerror: corrupt\n", (), "not exactly one"),
        (17, "error: corrupt", (), "not exactly one"),
        (17, "Traceback (most recent call last):\nerror: x\n", (), "traceback"),
        (14, "error: truncated\n", ("out.ply",), "left output"),
        (0, "RuntimeWarning: overflow\n", (), "stderr"),
        (0, "", (), "does not read back"),
    ],
)
def test_the_checker_catches_broken_promises(tmp_path, returncode, stderr, files, problem):
    for name in files:
        (tmp_path / name).write_bytes(b"partial")
    outcome = Outcome("ply_binary:0", "decompress", ["decompress"], [], returncode, stderr, 0.1)
    check(outcome, tmp_path, "", None)
    assert any(problem in p for p in outcome.problems), outcome.problems
