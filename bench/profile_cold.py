"""Where a cold whole process spends its time: the CLI run in a fresh interpreter under ``thread_sampler.Timeline``
(started before anything is imported), then every thread's segments of one activity printed in time order.

    python3 bench/profile_cold.py --min 0.03 -- compress scene.ply -o OUT --json

What it shows: ``import torch`` beside the background read, the CUDA start and kernel warm-up thread, and the
first use of each device operation inside the pipeline's stages (a warm process does not pay those).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
IDLE = {"thread.py:_worker", "threading.py:wait", "_base.py:as_completed"}
"""Labels of a thread that waits for work (a pool's idle worker): not printed."""

CHILD = """
import json, os, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from thread_sampler import Timeline
with Timeline() as timeline:
    from sogs_compressor.cli import main
    code = main(sys.argv[3:])
with open(sys.argv[2], "w") as out:
    json.dump({"code": code, "wall_s": time.perf_counter() - started, "segments": timeline.segments(0.0)}, out)
sys.stdout.flush()
os._exit(code)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min", type=float, default=0.03, help="shortest segment printed, seconds")
    parser.add_argument("--json", type=Path, help="also write every segment here")
    parser.add_argument("cli", nargs=argparse.REMAINDER, help="the sogs-compressor arguments (after --)")
    args = parser.parse_args()
    cli = args.cli[1:] if args.cli[:1] == ["--"] else args.cli
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "timeline.json"
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CHILD, str(BENCH), str(record), *cli], check=False,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t
        if not record.exists():
            print(done.stdout[-2000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
            return 1
        data = json.loads(record.read_text())
    print(f"exit {done.returncode}; process wall {wall:.2f} s (interpreter start to exit; "
          f"from the first import to the result: {data['wall_s']:.2f} s)")
    for thread, start, end, label in data["segments"]:
        if end - start >= args.min and label not in IDLE:
            print(f"{start:7.3f} {end:7.3f} {end - start:6.3f}  {thread:<16} {label}")
    if args.json:
        args.json.write_text(json.dumps({"wall_s": wall, **data}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
