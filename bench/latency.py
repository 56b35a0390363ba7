"""Latency desired -> device command -> reported: pyiot beside two hand-written drivers.

Each driver drives its own simulated relay through the same local stack (in a process of its
own, as `pyiot broker` runs); an application client (TCP_NODELAY, QoS 1) sets
`desired.relayState` and times until the shadow's `update/documents` shows it reported and the
desired key cleared. The drivers take turns, one round trip each, so that all see the same
machine. Each driver's CPU time per round trip is printed too.

The hand-written drivers: bench/handwritten_relay.py does the device I/O blocking on awscrt's
callback thread (the least work there is, for one fast device); bench/handwritten_async_relay.py
hands each delta to an asyncio loop, as a driver of several devices must (as pyiot does).

    python bench/latency.py [--rounds 300] [--also CHECKOUT]

`--also CHECKOUT` runs one more driver, pyiot from another checkout (e.g. `git archive` of an
older commit unpacked in /tmp), in the same turns: a before/after comparison under one load.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyiot.local import LocalStack  # noqa: E402

RELAY = ROOT / "devices" / "relay.iot"
# The drivers, each driving its own simulated relay.
BLOCKING = "hand-written, blocking"  # bench/handwritten_relay.py: I/O on awscrt's thread
ASYNCIO = "hand-written, asyncio"  # bench/handwritten_async_relay.py: as a gateway must
PYIOT = "pyiot"


def start(args: list[str], ready: str) -> tuple[subprocess.Popen, re.Match]:
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(ready, line)
        if found:
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process, found
    raise SystemExit(f"{args} exited before {ready!r}")


class App:
    """The application side: sets desired, waits for the matching documents message."""

    def __init__(self, host: str, port: int, thing: str):
        self.thing = thing
        self.documents: queue.Queue = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_socket_open = lambda c, u, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        self.client.on_message = lambda c, u, m: self.documents.put(json.loads(m.payload))
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(f"$aws/things/{thing}/shadow/update/documents", qos=1)
        time.sleep(0.3)

    def round_trip(self, value: bool) -> float:
        while not self.documents.empty():
            self.documents.get_nowait()
        started = time.perf_counter()
        payload = json.dumps({"state": {"desired": {"relayState": value}}})
        self.client.publish(f"$aws/things/{self.thing}/shadow/update", payload, qos=1)
        while True:
            state = self.documents.get(timeout=10)["current"]["state"]
            if state.get("reported", {}).get("relayState") is value and "relayState" not in (
                state.get("desired") or {}
            ):
                return (time.perf_counter() - started) * 1000


def measure(app: App, rounds: int) -> list[float]:
    """One driver's round trips, sorted (bench/hostile.py)."""
    return measure_in_turns({"": app}, rounds)[""]


def warm_up(apps: dict[str, App], rounds: int = 20) -> None:
    """Round trips not counted: connections, caches and the first shadow versions settle."""
    for i in range(rounds):
        for app in apps.values():
            app.round_trip(i % 2 == 0)


def measure_in_turns(apps: dict[str, App], rounds: int) -> dict[str, list[float]]:
    """`take_turns` after a warm-up."""
    warm_up(apps)
    return take_turns(apps, rounds)


def take_turns(apps: dict[str, App], rounds: int) -> dict[str, list[float]]:
    """Round trips of each driver, sorted, taken in turns (one of each, then again): on a
    shared, busy machine the load changes by the second, and taking the drivers one after
    the other would compare two different machines. Each turn goes in a new order (seeded,
    so runs repeat): a driver that always followed the same one would inherit its
    aftermath."""
    times: dict[str, list[float]] = {name: [] for name in apps}
    order = list(apps)
    shuffle = random.Random(12).shuffle
    for i in range(rounds):
        shuffle(order)
        for name in order:
            times[name].append(apps[name].round_trip(i % 2 == 0))
    return {name: sorted(values) for name, values in times.items()}


def also_pyiot(checkout: Path, folder: Path, broker: str) -> list[subprocess.Popen]:
    """A simulated relay and `pyiot run` from `checkout`, its thing named relayAlso."""
    source = folder / "relay_also.iot"
    source.write_text(RELAY.read_text().replace("thing relayOne", "thing relayAlso"))
    sim, found = start([sys.executable, "-m", "pyiot", "simulate", str(RELAY)], r"(socket://\S+)")
    env = dict(os.environ, PYTHONPATH=str(checkout))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyiot",
            "run",
            str(source),
            "--broker",
            broker,
            "--device",
            f"relay1={found.group(1)}",
            "--no-aws-limits",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=checkout,
        env=env,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("ready"):
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return [sim, process]
    raise SystemExit(f"pyiot from {checkout} exited before ready")


def serve_stack(folder: str, aws_limits: bool) -> None:
    """The local stack in this process until stdin closes: started by `main` as a process of
    its own, as a user runs `pyiot broker`, so that its threads do not share a GIL with the
    application clients that take the times."""
    stack = LocalStack(port=None, data_dir=Path(folder), aws_limits=aws_limits)
    stack.start()
    # Hundreds of round trips a second to one thing: above AWS's 20 requests a second per
    # thing, which the local shadow service applies by default. Measure pyiot, not the throttle.
    stack.lift_rate_limits()  # the front's parsing stays
    print(
        f"stack {stack.host} {stack.port} front={'off' if stack.front is None else 'on'}",
        flush=True,
    )
    try:
        sys.stdin.read()
    finally:
        stack.stop()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument(
        "--no-aws-limits",
        action="store_true",
        help="no quota front: clients talk to mosquitto directly (the front's cost is the "
        "difference to a run without this)",
    )
    parser.add_argument("--also", type=Path, help="another checkout's pyiot as one more driver")
    parser.add_argument("--serve-stack", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    python = sys.executable
    if args.serve_stack:
        serve_stack(args.serve_stack, aws_limits=not args.no_aws_limits)
        return
    with tempfile.TemporaryDirectory() as data:
        stack_args = [python, __file__, "--serve-stack", data]
        if args.no_aws_limits:
            stack_args.append("--no-aws-limits")
        stack_process = subprocess.Popen(
            stack_args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert stack_process.stdout is not None
        ready = stack_process.stdout.readline().split()
        if not ready or ready[0] != "stack":
            raise SystemExit("the local stack did not start")
        host, port = ready[1], int(ready[2])
        url = f"mqtt://{host}:{port}"
        print(f"quota front: {ready[3].split('=')[1]}")
        processes = []
        try:

            def device() -> str:
                """A simulated relay of its own for one driver: its socket:// URL."""
                sim, found = start(
                    [python, "-m", "pyiot", "simulate", str(RELAY)], r"(socket://\S+)"
                )
                processes.append(sim)
                return found.group(1)

            def driver(name: str, args: list[str], thing: str) -> None:
                process, _ = start([python, *args], r"^ready")
                processes.append(process)
                drivers[name] = process
                apps[name] = App(host, port, thing)

            drivers: dict[str, subprocess.Popen] = {}
            apps: dict[str, App] = {}
            bench = str(ROOT / "bench")
            driver(BLOCKING, [f"{bench}/handwritten_relay.py", url, device(), "relayBaseline"],
                   "relayBaseline")  # fmt: skip
            driver(ASYNCIO, [f"{bench}/handwritten_async_relay.py", url, device(), "relayAsync"],
                   "relayAsync")  # fmt: skip
            # Nor pyiot's own pacing to AWS's 100 publishes a second per connection.
            driver(PYIOT, ["-m", "pyiot", "run", str(RELAY), "--broker", url,
                           "--device", f"relay1={device()}", "--no-aws-limits"],
                   "relayOne")  # fmt: skip
            if args.also is not None:
                also = also_pyiot(args.also.resolve(), Path(data), url)
                processes += also
                apps[f"pyiot ({args.also.name})"] = App(host, port, "relayAlso")
                drivers[f"pyiot ({args.also.name})"] = also[1]
            warm_up(apps)  # then the CPU counters start: they cover the measured trips only
            cpu_before = {name: cpu_seconds(process.pid) for name, process in drivers.items()}
            results = take_turns(apps, args.rounds)
            cpu = {
                name: (cpu_seconds(process.pid) - cpu_before[name]) / args.rounds * 1000
                for name, process in drivers.items()
            }
        finally:
            for process in processes:
                process.terminate()
            assert stack_process.stdin is not None
            stack_process.stdin.close()
            stack_process.wait()
    print(f"desired -> reported, {args.rounds} round trips each, {os.cpu_count()} cores")
    print(f"{'driver':<28}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'CPU ms/trip':>13}")
    for name, values in results.items():
        print(
            f"{name:<28}{pct(values, 0.5):>9.2f}{pct(values, 0.99):>9.2f}{values[-1]:>9.2f}"
            f"{cpu[name]:>13.2f}"
        )
    base, ours = results[BLOCKING], results[PYIOT]
    ratio = pct(ours, 0.5) / pct(base, 0.5)
    print(
        f"pyiot p50 / blocking hand-written p50 = {ratio:.2f} (target <= 1.2); "
        f"pyiot p99 = {pct(ours, 0.99):.2f} ms (target <= 5)"
    )
    print(
        "pyiot p50 / asyncio hand-written p50 = "
        f"{pct(ours, 0.5) / pct(results[ASYNCIO], 0.5):.2f} (the same thread hand-overs)"
    )
    for name, values in results.items():
        if name.startswith("pyiot ("):
            print(f"{name} p50 / blocking p50 = {pct(values, 0.5) / pct(base, 0.5):.2f}")


if __name__ == "__main__":
    main()
