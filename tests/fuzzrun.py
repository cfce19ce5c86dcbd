"""Runs fuzz cases (tests/fuzzcases.py) against the CLI and checks the promise made for every input.

For each case: the exit code is one the README documents for input problems (0 when the mutation happened to
be harmless, and then the output must decode); a failure prints exactly one ``error:`` line on stderr, no
traceback, and leaves no output file; a success prints nothing on stderr; memory stays under an address-space
limit; time stays under a per-case limit.

Most cases run in-process, many per driver process (``python tests/fuzzrun.py --driver ...``): a driver calls
``sogs_compressor.cli.main`` with file descriptors 1 and 2 redirected per case, so warnings and native writes
are caught exactly as a subprocess would show them. Drivers for ``info``/``decompress`` run under a 1 GiB
address-space limit, drivers for ``compress`` (which import torch) under 3 GiB; a driver that dies or hangs is
replaced and the case in flight is reported. A few cases also run as real ``python -m sogs_compressor``
subprocesses. As a script it runs a campaign::

    python tests/fuzzrun.py --cases 10000 [--kinds sog_bundle,...] [--start 0] [--workers 2] [--keep DIR]
                            [--outcomes FILE] [--subprocess]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

from clirun import COMPRESS_ADDRESS_SPACE, INFO_ADDRESS_SPACE, limit_address_space, run_cli  # noqa: E402
from fuzzcases import KINDS, build_case, case_plan, write_seeds  # noqa: E402

INPUT_CODES = frozenset((0, 3, 10, 11, 12, 13, 14, 15, 17))
"""Exit codes an input can earn (errors.EXIT_CODES); 16 too when ``--invalid error`` is given, and 2 (a usage
error) when ``--lod N`` names a level the Streamed SOG does not have."""

CASE_SECONDS = {"info": 20.0, "decompress": 20.0, "compress": 90.0}
"""Per-case time limits, generous for a loaded 2-core machine (typical cases take well under a second)."""


@dataclass
class Outcome:
    """What one case did, and what was wrong with it (empty ``problems``: it kept the promise)."""

    case: str
    command: str
    argv: list[str]
    mutations: list[str]
    returncode: int | None = None
    stderr: str = ""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def check(outcome: Outcome, output: Path, stdout: str, decoy_count: int | None) -> None:
    """Append to ``outcome.problems`` every way the run broke the promise (see the module docstring)."""
    rc, stderr = outcome.returncode, outcome.stderr
    allowed = INPUT_CODES | ({16} if "--invalid" in outcome.argv else set()) | ({2} if "--lod" in outcome.argv else set())
    if rc not in allowed:
        outcome.problems.append(f"exit code {rc}")
    if "Traceback" in stderr:
        outcome.problems.append("traceback on stderr")
    if outcome.seconds > CASE_SECONDS[outcome.command]:
        outcome.problems.append(f"took {outcome.seconds:.1f} s")
    written = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
    if rc != 0:
        if not (stderr.startswith("error: ") and stderr.count("\n") == 1 and stderr.endswith("\n")):
            outcome.problems.append("stderr is not exactly one 'error:' line")
        if written:
            outcome.problems.append(f"failure left output files {written}")
        return
    if stderr:
        outcome.problems.append("success with text on stderr")
    problem = verify_output(outcome.command, output, stdout, decoy_count)
    if problem:
        outcome.problems.append(problem)


def verify_output(command: str, output: Path, stdout: str, decoy_count: int | None) -> str | None:
    """None when a successful run's output is usable: info's JSON, a PLY or SOG that reads back."""
    from sogs_compressor.read import read_scene

    try:
        if command == "info":
            count = json.loads(stdout)["count"]
        elif command == "decompress":
            count = read_scene(output / "out.ply").splats.count
        else:
            bundles = sorted((output / "sog").glob("*.sog"))
            if not bundles:
                return "compress succeeded without writing a .sog"
            count = read_scene(bundles[0]).splats.count
    except Exception as error:  # noqa: BLE001 - any failure to read back is the finding
        return f"output does not read back: {type(error).__name__}: {error}"[:300]
    if count < 1:
        return f"output has {count} splats"
    if decoy_count is not None and count == decoy_count and command != "compress":
        return "read the decoy scene beside the bundle (wrong accept)"
    return None


# --- driver: many cases in one process ----------------------------------------------------------------------------

class CaseTimeout(BaseException):
    """Raised by the alarm in a driver; a BaseException so the CLI's ``except Exception`` does not eat it."""


def _captured_main(argv: list[str], seconds: float) -> tuple[int, str, str]:
    """``cli.main(argv)`` with fds 1 and 2 redirected to temporary files: (exit code, stdout, stderr)."""
    from sogs_compressor.cli import main

    def alarm(signum, frame):
        raise CaseTimeout

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            rc = main(argv)
        except SystemExit as exit_:
            rc = exit_.code if isinstance(exit_.code, int) else 2
        except CaseTimeout:
            rc = -1
            print(f"case timed out after {seconds} s", file=sys.stderr)
        except BaseException:  # noqa: BLE001 - anything escaping main is a finding: report it as a traceback
            rc = -2
            traceback.print_exc()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        out.seek(0)
        err.seek(0)
        return rc, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def drive(specs_path: Path, results_path: Path) -> None:
    """Run every case of a spec file in this process, appending one JSON line per case start and result."""
    import warnings

    warnings.simplefilter("always")  # every warning is printed, not only the first from each line
    specs = json.loads(specs_path.read_text())
    seeds, work = Path(specs["seeds"]), Path(specs["work"])
    with open(results_path, "a") as results:
        for kind, seed, command in specs["cases"]:
            results.write(json.dumps({"start": f"{kind}:{seed}"}) + "\n")
            results.flush()
            workdir = work / f"{kind}-{seed}"
            case = build_case(kind, seed, seeds, workdir, command)
            outcome = Outcome(case.name, case.command, case.argv(), case.mutations)
            start = time.monotonic()
            outcome.returncode, stdout, outcome.stderr = _captured_main(case.argv(), CASE_SECONDS[command])
            outcome.seconds = time.monotonic() - start
            check(outcome, case.output, stdout, specs["decoy"] if kind == "sog_bundle" else None)
            if not outcome.problems:
                shutil.rmtree(workdir, ignore_errors=True)
            results.write(json.dumps(asdict(outcome)) + "\n")
            results.flush()


# --- harness: drivers in parallel, restarted after a crash --------------------------------------------------------

def _run_driver_pool(cases: list[tuple[str, int, str]], seeds: Path, work: Path, address_space: int,
                     outcomes: list[Outcome]) -> None:
    """Run ``cases`` through driver processes until each has an outcome (a dead or hung driver is replaced and
    the case it was running is reported)."""
    from fuzzcases import DECOY_COUNT

    remaining = list(cases)
    while remaining:
        specs = work / f"specs-{threading.get_ident()}-{len(remaining)}.json"
        results, log_path = specs.with_suffix(".jsonl"), specs.with_suffix(".log")
        specs.write_text(json.dumps({"seeds": str(seeds), "work": str(work), "decoy": DECOY_COUNT,
                                     "cases": remaining}))
        results.touch()
        with open(log_path, "w") as log, open(results) as feed:
            driver = subprocess.Popen([sys.executable, str(TESTS / "fuzzrun.py"), "--driver", str(specs),
                                       str(results)], stdout=log, stderr=subprocess.STDOUT, cwd=work,
                                      preexec_fn=lambda: limit_address_space(address_space))
            started, pending = time.monotonic(), ""
            while True:
                finished = driver.poll() is not None
                pending += feed.read()
                *lines, pending = pending.split("\n")
                for line in lines:
                    record = json.loads(line)
                    if "start" in record:
                        started = time.monotonic()
                    else:
                        outcomes.append(Outcome(**record))
                        remaining.pop(0)
                hung = remaining and time.monotonic() - started > CASE_SECONDS[remaining[0][2]] + 30
                if finished or hung:
                    break
                time.sleep(0.05)
            if not finished:
                driver.kill()
                driver.wait()
        if remaining and (finished or hung):  # the driver stopped inside remaining[0]
            kind, seed, command = remaining.pop(0)
            outcomes.append(Outcome(f"{kind}:{seed}", command, [], [], driver.returncode, log_path.read_text()[-500:],
                                    time.monotonic() - started, ["driver died or hung (memory, crash or timeout)"]))


def run_cases(cases: list[tuple[str, int, str]], seeds: Path, work: Path, workers: int = 2) -> list[Outcome]:
    """Outcomes of ``cases`` ((kind, seed, command) each): read drivers and compress drivers side by side."""
    pools = [
        ([c for c in cases if c[2] != "compress"], INFO_ADDRESS_SPACE),
        ([c for c in cases if c[2] == "compress"], COMPRESS_ADDRESS_SPACE),
    ]
    jobs = []
    for subset, address_space in pools:
        lanes = max(1, workers // 2) if subset else 0
        for lane in range(lanes):
            jobs.append((subset[lane::lanes], address_space))
    outcomes: list[Outcome] = []
    threads = [threading.Thread(target=_run_driver_pool, args=(subset, seeds, work, space, outcomes))
               for subset, space in jobs if subset]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def run_subprocess_case(kind: str, seed: int, command: str, seeds: Path, work: Path) -> Outcome:
    """One case through a real ``python -m sogs_compressor`` process under the same limits."""
    from fuzzcases import DECOY_COUNT

    workdir = work / f"sub-{kind}-{seed}"
    case = build_case(kind, seed, seeds, workdir, command)
    outcome = Outcome(case.name, case.command, case.argv(), case.mutations)
    space = COMPRESS_ADDRESS_SPACE if command == "compress" else INFO_ADDRESS_SPACE
    try:
        run = run_cli(case.argv(), address_space=space, timeout=CASE_SECONDS[command] + 30, cwd=workdir)
    except subprocess.TimeoutExpired:
        outcome.problems.append("subprocess timed out")
        return outcome
    outcome.returncode, outcome.stderr, outcome.seconds = run.returncode, run.stderr, run.seconds
    check(outcome, case.output, run.stdout, DECOY_COUNT if kind == "sog_bundle" else None)
    if not outcome.problems:
        shutil.rmtree(workdir, ignore_errors=True)
    return outcome


def plan(kinds: tuple[str, ...], count: int, start: int = 0) -> list[tuple[str, int, str]]:
    """``count`` cases per kind, seeds ``start..start+count-1``, each with the command its seed chooses."""
    return [(kind, seed, case_plan(kind, seed)[1]) for kind in kinds for seed in range(start, start + count)]


def summary(outcomes: list[Outcome]) -> str:
    """Counts per kind and exit code, and every failing case."""
    lines = []
    for kind in KINDS:
        mine = [o for o in outcomes if o.case.startswith(kind + ":")]
        if not mine:
            continue
        codes = Counter(o.returncode for o in mine)
        commands = Counter(o.command for o in mine)
        bad = [o for o in mine if o.problems]
        slowest = max(o.seconds for o in mine)
        lines.append(f"{kind}: {len(mine)} cases ({dict(sorted(commands.items()))}), exit codes "
                     f"{dict(sorted(codes.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))}, "
                     f"failures {len(bad)}, slowest {slowest:.1f} s")
    for o in outcomes:
        if o.problems:
            lines.append(f"FAIL {o.case} {o.command} {o.mutations}: {o.problems} rc={o.returncode} "
                         f"stderr={o.stderr[-400:]!r}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--driver", nargs=2, metavar=("SPECS", "RESULTS"), help=argparse.SUPPRESS)
    parser.add_argument("--cases", type=int, default=100, help="cases per kind")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="work folder to keep (failing cases stay there)")
    parser.add_argument("--outcomes", type=Path, help="write every outcome here (JSON lines)")
    parser.add_argument("--subprocess", action="store_true",
                        help="run every case as its own 'python -m sogs_compressor' process (slower)")
    args = parser.parse_args()
    if args.driver:
        drive(Path(args.driver[0]), Path(args.driver[1]))
        return 0
    work = args.keep or Path(tempfile.mkdtemp(prefix="sogs-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    seeds = work / "seeds"
    if not seeds.exists():
        write_seeds(seeds)
    started = time.monotonic()
    cases = plan(tuple(args.kinds.split(",")), args.cases, args.start)
    if args.subprocess:
        with ThreadPoolExecutor(args.workers) as pool:
            outcomes = list(pool.map(lambda c: run_subprocess_case(*c, seeds, work), cases))
    else:
        outcomes = run_cases(cases, seeds, work, args.workers)
    if args.outcomes:
        args.outcomes.write_text("".join(json.dumps(asdict(o)) + "\n" for o in outcomes))
    print(summary(outcomes))
    print(f"{len(outcomes)} cases in {time.monotonic() - started:.0f} s, work folder {work}")
    return 1 if any(o.problems for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
