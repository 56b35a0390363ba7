"""Scale: N relays on TCP simulators, each polled once a second, in one process.

A simulator process serves N relays (devices/relay.iot's protocol), one TCP port each, and
notes when each poll arrives. Then, each in a fresh process against the same simulators:

- pyiot: N ComponentEngines (`poll every 1s`, TCP links), as `pyiot run` runs components;
- the baseline: a minimal asyncio loop per relay (connect, write `RELAY?`, read the line,
  sleep a second), no pyiot.

For each: CPU (per cent of one core, over the measuring window), RSS at its end, and missed
polls, counted at the devices: a gap of k periods between two polls of one relay is k - 1
missed polls (rounded), a relay never polled in the window misses all. "x due" is the polls
the devices saw over the polls due (N x window / period): above 1, queries were sent again
(a reply that came later than the device's timeout). Each worker also notes how late its loop
runs a 50 ms sleep (the longest lag, and how many lags over 0.25 s) and its full (generation 2)
garbage collections, over the window.

    python bench/scale.py [--n 100 1000] [--seconds 20] [--warmup 5] [--period 1]
    python bench/scale.py --n 10000 --period 10 --seconds 60 --warmup 20
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIMS_PER_PROCESS = 5000

# The poll period: --period, passed on to the simulator and worker processes.
PERIOD = float(os.environ.get("PYIOT_BENCH_PERIOD", "1"))
RELAY = (ROOT / "devices" / "relay.iot").read_text(encoding="utf-8")
DEVICE = RELAY[RELAY.index("\ndevice Relay") : RELAY.index("\nthing ")].replace(
    "poll every 5s", f"poll every {PERIOD:g}s"
)


def _more_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


# ----------------------------------------------------------------------------- simulators
def run_simulators(count: int, record: Path) -> None:
    """Serve `count` relays; on stdin EOF write {port: [arrival times]} to `record`."""
    from pyiot.compiler import Program
    from pyiot.lang import load
    from pyiot.sim import DeviceSimulator, PortSimulator

    _more_files()
    device = Program.from_model(load(DEVICE, "relay.iot")).model.devices["Relay"]
    arrivals: dict[int, list[float]] = {}

    class Timed(PortSimulator):
        def respond(self, line: str) -> bytes:
            self.times.append(time.monotonic())
            return super().respond(line)

    async def serve() -> None:
        sims = []
        for _ in range(count):
            sim = Timed([DeviceSimulator("relay1", device)])
            sim.times = []
            url = await sim.serve_tcp()
            arrivals[int(url.rsplit(":", 1)[1])] = sim.times
            sims.append(sim)
        print(json.dumps(sorted(arrivals)), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes it
        record.write_text(json.dumps(arrivals))
        for sim in sims:
            await sim.close()

    asyncio.run(serve())


# --------------------------------------------------------------------------------- workers
def rss_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB."""
    found = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


async def run_pyiot(ports: list[int]) -> list:
    from pyiot.compiler import Program
    from pyiot.lang import load
    from pyiot.runtime.component import ComponentEngine, EngineConfig
    from pyiot.runtime.transport import open_link

    program = Program.from_model(load(DEVICE, "relay.iot"))
    engines = [
        ComponentEngine(
            EngineConfig(f"relay{n}", program.model.devices["Relay"], program.machines["Relay"]),
            open_link("tcp", f"127.0.0.1:{port}"),
        )
        for n, port in enumerate(ports)
    ]
    for engine in engines:
        await engine.start()
    return engines


async def run_baseline(ports: list[int]) -> list:
    """The minimal poll loop: what any asyncio program pays to poll N devices."""
    values: dict[int, bool] = {}

    async def poll(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(6, 1, 1)  # TCP_NODELAY
        while True:
            writer.write(b"RELAY?\n")
            try:
                line = await asyncio.wait_for(reader.readline(), 0.5)
            except asyncio.TimeoutError:
                continue  # a slow answer (10,000 relays at once) is no reason to stop polling
            if line.startswith(b"RELAY"):
                values[port] = line[5:].strip() == b"ON"
            await asyncio.sleep(PERIOD)

    return [asyncio.create_task(poll(port)) for port in ports]


def run_worker(mode: str, ports: list[int], warmup: float, seconds: float) -> None:
    _more_files()

    async def work() -> None:
        started = await (run_pyiot if mode == "pyiot" else run_baseline)(ports)
        pauses: list[float] = []
        gc_began = [0.0]

        def on_gc(phase: str, info: dict) -> None:
            if phase == "start":
                gc_began[0] = time.perf_counter()
            elif info.get("generation") == 2:
                pauses.append(time.perf_counter() - gc_began[0])

        gc.callbacks.append(on_gc)
        lags: list[float] = []

        async def watch_lag() -> None:
            # How late the loop runs a 50 ms sleep: a stalled loop delays every reply.
            loop = asyncio.get_running_loop()
            while True:
                due = loop.time() + 0.05
                await asyncio.sleep(0.05)
                lags.append(loop.time() - due)

        watching = asyncio.create_task(watch_lag())
        await asyncio.sleep(warmup)
        lags.clear()
        pauses.clear()

        cpu, wall, begin = time.process_time(), time.perf_counter(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        watching.cancel()
        rss, peak = rss_kib()
        result = {
            "cpu": cpu / wall,
            "rss_kib": rss,
            "peak_kib": peak,
            "window": [begin, time.monotonic()],
            "gc2": [len(pauses), max(pauses, default=0.0)],
            "lag": [max(lags, default=0.0), sum(lag > 0.25 for lag in lags)],
        }
        if mode == "pyiot":
            result["online"] = sum(engine.status.online for engine in started)
        print(json.dumps(result), flush=True)
        # The N connections and tasks need no orderly goodbye (and asyncio.run's cancelling
        # of 1,000 engines' tasks can hang: transitions may swallow a cancel, its #704).
        os._exit(0)

    asyncio.run(work())


def missed_polls(
    arrivals: dict[str, list[float]], begin: float, end: float
) -> tuple[int, int, float]:
    """(polls in the window, missed polls, longest gap between two polls of one relay)."""
    polls = missed = 0
    longest = 0.0
    for times in arrivals.values():
        inside = [t for t in times if begin <= t <= end]
        polls += len(inside)
        if not inside:
            missed += round((end - begin) / PERIOD)
            longest = max(longest, end - begin)
            continue
        edges = [begin, *inside, end]
        for earlier, later in zip(edges, edges[1:], strict=False):
            missed += max(0, round((later - earlier) / PERIOD) - 1)
        for earlier, later in zip(inside, inside[1:], strict=False):
            longest = max(longest, later - earlier)
    return polls, missed, longest


def measure(
    count: int, warmup: float, seconds: float, modes: tuple[str, ...] = ("baseline", "pyiot")
) -> dict[str, dict]:
    python = sys.executable
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode in modes:
            # A relay holds two descriptors in its simulator process (listening, connected):
            # more than SIMS_PER_PROCESS relays are served by several processes.
            shares = [min(SIMS_PER_PROCESS, count - n) for n in range(0, count, SIMS_PER_PROCESS)]
            records = [Path(folder) / f"{mode}{i}.json" for i in range(len(shares))]
            processes = [
                subprocess.Popen(
                    [python, __file__, "simulators", str(share), str(record)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                )
                for share, record in zip(shares, records, strict=True)
            ]
            ports = []
            for sims in processes:
                assert sims.stdout is not None
                ports += json.loads(sims.stdout.readline())
            worker = subprocess.run(
                [python, __file__, "worker", mode, json.dumps(ports), str(warmup), str(seconds)],
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            for sims in processes:
                assert sims.stdin is not None
                sims.stdin.close()
                sims.wait()
            if worker.returncode:
                raise SystemExit(f"{mode} worker failed:\n{worker.stderr}")
            result = json.loads(worker.stdout.strip().splitlines()[-1])
            arrivals: dict[str, list[float]] = {}
            for record in records:
                arrivals.update(json.loads(record.read_text()))
            result["polls"], result["missed"], result["gap"] = missed_polls(
                arrivals, *result["window"]
            )
            results[mode] = result
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "simulators":
        run_simulators(int(sys.argv[2]), Path(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        run_worker(sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--period", type=float, default=None, help="poll period, s (1)")
    parser.add_argument(
        "--only", choices=("baseline", "pyiot"), help="run one poller (no comparison)"
    )
    args = parser.parse_args()
    if args.period is not None and args.period != PERIOD:
        # The period is read at import, here and in the simulator and worker processes.
        os.environ["PYIOT_BENCH_PERIOD"] = str(args.period)
        os.execv(sys.executable, [sys.executable, __file__, *sys.argv[1:]])
    print(f"N relays polled every {PERIOD:g} s in one process, {args.seconds:g} s window")
    print(
        f"{'N':>6} {'poller':<10}{'CPU % core':>11}{'RSS MB':>8}{'peak MB':>9}"
        f"{'polls':>8}{'x due':>7}{'missed':>8}{'max gap s':>10}"
    )
    for count in args.n:
        modes = (args.only,) if args.only else ("baseline", "pyiot")
        results = measure(count, args.warmup, args.seconds, modes)
        for mode, r in results.items():
            print(
                f"{count:>6} {mode:<10}{r['cpu'] * 100:>11.1f}{r['rss_kib'] / 1024:>8.1f}"
                f"{r['peak_kib'] / 1024:>9.1f}{r['polls']:>8}"
                f"{r['polls'] / (count * args.seconds / PERIOD):>7.2f}{r['missed']:>8}"
                f"{r['gap']:>10.3f}   loop lag max {r['lag'][0]:.2f} s, "
                f"{r['lag'][1]} over 0.25 s; full GCs {r['gc2'][0]}, longest {r['gc2'][1]:.2f} s"
            )
        if args.only:
            continue
        ours, base = results["pyiot"], results["baseline"]
        if count >= 1000:
            print(
                f"       pyiot at {count}: CPU {ours['cpu']:.0%} of a core, "
                f"{ours['cpu'] / max(base['cpu'], 1e-9):.1f} x the baseline (target <= 3 x), "
                f"RSS {ours['rss_kib'] / 1024:.0f} MB (target <= 100), missed "
                f"{ours['missed']} (target 0); {ours.get('online')} of {count} online"
            )


if __name__ == "__main__":
    main()
