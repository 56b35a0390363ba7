"""Where the time of one desired -> reported round trip goes, stage by stage.

Runs bench/latency.py's set-up (local stack, simulated relays, an application setting
`desired.relayState` and waiting for `update/documents`), with pyiot and the hand-written
driver each timestamping the stages of a round trip (time.perf_counter is CLOCK_MONOTONIC, the
same clock in every process). pyiot is instrumented from outside by wrapping its functions (the
names below; a stage whose function no longer exists is left out); the hand-written driver
marks its own stages when PYIOT_BENCH_MARKS names a file.

    python bench/latency_stages.py [--rounds 500]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# (stage mark, module, class, function): each wrapped to note when it is first called.
PYIOT_MARKS = [
    ("delta handed to the loop", "pyiot.runtime.thing", "ThingRuntime", "_on_delta"),
    # An idle engine's set (since issue 12 part 6; older trees leave this stage out).
    ("engine.submit_set", "pyiot.runtime.component", "ComponentEngine", "submit_set"),
    # An idle link takes a command without waiting (`write`, the fallback, is not timed); the
    # simulated relays are reached over TCP.
    ("command written", "pyiot.runtime.transport", "SerialLink", "write_nowait"),
    ("command written", "pyiot.runtime.transport", "TcpLink", "write_nowait"),
    ("reply line routed", "pyiot.runtime.component", "ComponentEngine", "_route"),
    ("shadow update sent", "pyiot.runtime.shadow_client", "ShadowConnection", "publish_report"),
]
HANDWRITTEN_MARKS = ["delta callback", "command written", "reply read", "update published"]


def instrumented_pyiot(marks_file: str, argv: list[str]) -> None:
    """`pyiot ARGV` with the stage functions wrapped (runs in the child process)."""
    import importlib
    import inspect

    marks: list[tuple[str, float]] = []

    def wrap(label: str, owner: type, name: str) -> None:
        original = getattr(owner, name)
        if inspect.iscoroutinefunction(original):

            async def timed(*args, **kwargs):
                marks.append((label, time.perf_counter()))
                return await original(*args, **kwargs)
        else:

            def timed(*args, **kwargs):
                marks.append((label, time.perf_counter()))
                return original(*args, **kwargs)

        timed.__name__ = original.__name__
        setattr(owner, name, timed)

    for label, module, cls, name in PYIOT_MARKS:
        owner = getattr(importlib.import_module(module), cls, None)
        if owner is not None and hasattr(owner, name):
            wrap(label, owner, name)
    # The delta's hop from awscrt's thread into the loop.
    original_threadsafe = asyncio.BaseEventLoop.call_soon_threadsafe

    def threadsafe(self, callback, *args, **kwargs):
        if getattr(callback, "__name__", "") == "_on_delta":
            marks.append(("delta callback", time.perf_counter()))
        return original_threadsafe(self, callback, *args, **kwargs)

    asyncio.BaseEventLoop.call_soon_threadsafe = threadsafe
    atexit.register(lambda: Path(marks_file).write_text(json.dumps(marks)))
    from pyiot.cli import main

    main(argv)


def breakdown(spans, marks, order: list[str]) -> list[tuple[str, list[float]]]:
    """Per stage, the milliseconds from the previous one, over the complete rounds."""
    rows = []
    for start, end in spans:
        first: dict[str, float] = {}
        for label, at in marks:
            if start <= at <= end:
                first.setdefault(label, at)
        present = [label for label in order if label in first]
        if len(present) == len(order):
            rows.append([start, *(first[label] for label in order), end])
    names = ["application publish", *order, "documents at the application"]
    return [
        (f"{names[k]} -> {names[k + 1]}", [(row[k + 1] - row[k]) * 1000 for row in rows])
        for k in range(len(names) - 1)
    ]


def watch_service(stack: Any) -> dict[str, list[tuple[str, float]]]:
    """Marks of the shadow service (it runs in this process): when each thing's report
    arrives. The common path (broker, service, application) is the same for both drivers;
    this splits what comes after a driver's publish from what is the stack's."""
    marks: dict[str, list[tuple[str, float]]] = {"relayBaseline": [], "relayOne": []}
    service = stack.shadow_service
    original = service.receive

    def receive(topic: str, payload: bytes) -> None:
        thing = topic.split("/")[2] if topic.startswith("$aws/things/") else ""
        if thing in marks and topic.endswith("/update") and b'"reported"' in payload:
            marks[thing].append(("report at the shadow service", time.perf_counter()))
        original(topic, payload)

    service.receive = receive
    return marks


def measure(rounds: int, aws_limits: bool = True) -> None:
    import latency as bench

    from pyiot.local import LocalStack

    python = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        stack = LocalStack(port=None, data_dir=Path(folder) / "stack", aws_limits=aws_limits)
        stack.start()
        # Hundreds of round trips a second to one thing: above AWS's 20 requests a second per
        # thing, which the local shadow service applies by default. Measure pyiot, not the throttle.
        stack.lift_rate_limits()
        service_marks = watch_service(stack)
        processes = []
        try:
            sim_a, found_a = bench.start(
                [python, "-m", "pyiot", "simulate", str(bench.RELAY)], r"(socket://\S+)"
            )
            sim_b, found_b = bench.start(
                [python, "-m", "pyiot", "simulate", str(bench.RELAY)], r"(socket://\S+)"
            )
            processes += [sim_a, sim_b]
            pyiot_marks = Path(folder) / "pyiot.json"
            pyiot_run, _ = bench.start(
                [
                    python,
                    __file__,
                    "--child",
                    str(pyiot_marks),
                    "run",
                    str(bench.RELAY),
                    "--broker",
                    stack.url,
                    "--device",
                    f"relay1={found_a.group(1)}",
                    # Nor pyiot's own pacing to AWS's 100 publishes a second per connection.
                    "--no-aws-limits",
                ],
                r"^ready",
            )
            hand_marks = Path(folder) / "hand.json"
            os.environ["PYIOT_BENCH_MARKS"] = str(hand_marks)
            hand, _ = bench.start(
                [
                    python,
                    str(ROOT / "bench" / "handwritten_relay.py"),
                    stack.url,
                    found_b.group(1),
                    "relayBaseline",
                ],
                r"^ready",
            )
            del os.environ["PYIOT_BENCH_MARKS"]
            processes += [pyiot_run, hand]
            spans = {}
            for name, thing in (("hand-written", "relayBaseline"), ("pyiot", "relayOne")):
                app = bench.App(stack.host, stack.port, thing)
                for n in range(30):
                    app.round_trip(n % 2 == 0)
                spans[name] = []
                for n in range(rounds):
                    start = time.perf_counter()
                    spans[name].append((start, start + app.round_trip(n % 2 == 0) / 1000))
                    time.sleep(0.002)
            for process in (pyiot_run, hand):
                process.send_signal(signal.SIGTERM)
                process.wait(10)
            at_service = "report at the shadow service"
            found = {
                "hand-written": (
                    json.loads(hand_marks.read_text()) + service_marks["relayBaseline"],
                    [*HANDWRITTEN_MARKS, at_service],
                ),
                "pyiot": (
                    json.loads(pyiot_marks.read_text()) + service_marks["relayOne"],
                    # One stage per label (a label may mark more than one function).
                    ["delta callback", *dict.fromkeys(label for label, *_ in PYIOT_MARKS),
                     at_service],  # fmt: skip
                ),
            }
        finally:
            for process in processes:
                process.terminate()
            stack.stop()
    for name, (marks, order) in found.items():
        present = [label for label in order if any(mark[0] == label for mark in marks)]
        stages = breakdown(spans[name], marks, present)
        complete = len(stages[0][1]) if stages else 0
        print(f"\n{name}: {complete} of {rounds} round trips with every stage; ms, p50 / mean")
        total = [0.0] * complete
        for label, values in stages:
            total = [a + b for a, b in zip(total, values, strict=True)]
            print(f"  {label:<66}{statistics.median(values):7.3f}{statistics.mean(values):8.3f}")
        print(f"  {'round trip':<66}{statistics.median(total):7.3f}{statistics.mean(total):8.3f}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        instrumented_pyiot(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--no-aws-limits", action="store_true", help="no quota front")
    args = parser.parse_args()
    measure(args.rounds, aws_limits=not args.no_aws_limits)


if __name__ == "__main__":
    main()
