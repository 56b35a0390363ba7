"""Run every benchmark, one after the other, each printing its figures beside its baseline.

    python bench/run_all.py [--quick]

- latency.py: desired -> device -> reported, pyiot beside two hand-written drivers (awscrt +
  device I/O blocking on awscrt's thread, and on asyncio): p50/p99 and CPU per round trip;
- utilisation.py: back-to-back polls through a 9600-baud wire, beside the wire's limit and a
  hand-written pyserial loop;
- scale.py: 100 and 1,000 relays polled at 1 Hz in one process (CPU, RSS, missed polls),
  beside a minimal asyncio poll loop;
- parse.py: parse + check + compile of devices/ and of a generated 10,000-line file, beside
  Lark's bare parse;
- latency_stages.py: where a round trip's time goes, stage by stage, pyiot beside the
  hand-written driver (the evidence for the latency target).

`--quick` shortens each (fewer rounds, shorter windows): for a smoke test, not for figures.
Run on an otherwise idle machine: the figures are timings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    args = parser.parse_args()
    runs = [
        ("latency.py", ["--rounds", "50" if args.quick else "300"]),
        ("utilisation.py", ["--seconds", "3" if args.quick else "10"]),
        (
            "scale.py",
            ["--n", "100", "1000", "--seconds", "5", "--warmup", "3"]
            if args.quick
            else ["--n", "100", "1000", "--seconds", "20", "--warmup", "5"],
        ),
        ("parse.py", ["--lines", "10000"]),
        ("latency_stages.py", ["--rounds", "100" if args.quick else "500"]),
    ]
    failed = []
    for script, options in runs:
        command = [sys.executable, str(BENCH / script), *options]
        print(f"\n== {' '.join(['python', f'bench/{script}', *options])}", flush=True)
        started = time.monotonic()
        if subprocess.run(command, cwd=BENCH.parent).returncode:
            failed.append(script)
        print(f"({time.monotonic() - started:.0f} s)", flush=True)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
