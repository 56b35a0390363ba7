"""Stopping pyiot at any moment: SIGTERM exits 0 and stops its mosquitto; SIGKILL takes the
mosquitto with it (the kernel's parent-death signal). Real `pyiot` processes, real mosquitto;
mosquitto processes are found by their pid in /proc."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RELAY, CliProcess
from tests.waiting import PATIENCE, wait_until

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]


def mosquittos_of(folder: Path) -> list[int]:
    """Pids of the mosquitto processes whose config lives in `folder`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"mosquitto") and str(folder).encode() in b" ".join(argv):
            found.append(int(entry))
    return [pid for pid in found if not gone(pid)]


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its new parent counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return "\nState:\tZ" in status


@pytest.fixture
def started(mosquitto_path: str) -> Iterator[list[CliProcess]]:
    processes: list[CliProcess] = []
    yield processes
    for process in processes:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


def start(processes: list[CliProcess], *args: str) -> CliProcess:
    process = CliProcess(*args)
    processes.append(process)
    return process


# Where in the start-up the signal lands: after one of these output lines, or as soon as the
# broker process exists (the stack is half-way up).
RUN_POINTS = ["simulator: relay1 on", "mosquitto started", "^local broker:", "^thing relayOne", "^ready"]


@pytest.mark.parametrize("attempt", [1, 2])
@pytest.mark.parametrize("point", RUN_POINTS)
def test_sigterm_during_and_right_after_start_up_of_run_exits_0(
    started, tmp_path: Path, point: str, attempt: int
) -> None:
    data = tmp_path / "data"
    run = start(started, "run", str(RELAY), "--simulate", "--data", str(data))
    if point == "mosquitto started":
        wait_until(lambda: mosquittos_of(data), what="mosquitto of the run")
    else:
        run.wait_for(point, timeout=PATIENCE)
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(timeout=PATIENCE) == 0, "\n".join(run.lines)
    assert mosquittos_of(data) == []
    assert not (data / "stack.json").exists()  # a clean stop leaves no record behind


@pytest.mark.parametrize("point", ["mosquitto started", "^broker:"])
def test_sigterm_during_and_right_after_start_up_of_broker_exits_0(
    started, tmp_path: Path, point: str
) -> None:
    data = tmp_path / "data"
    broker = start(started, "broker", "--port", "0", "--data", str(data))
    if point == "mosquitto started":
        wait_until(lambda: mosquittos_of(data), what="mosquitto of the broker")
    else:
        broker.wait_for(point, timeout=PATIENCE)
    broker.process.send_signal(signal.SIGTERM)
    assert broker.process.wait(timeout=PATIENCE) == 0, "\n".join(broker.lines)
    assert mosquittos_of(data) == []


def test_sigint_stops_the_broker_with_exit_0(started, tmp_path: Path) -> None:
    data = tmp_path / "data"
    broker = start(started, "broker", "--port", "0", "--data", str(data))
    broker.wait_for("^broker:", timeout=PATIENCE)
    broker.process.send_signal(signal.SIGINT)
    assert broker.process.wait(timeout=PATIENCE) == 0
    assert mosquittos_of(data) == []


def test_sigterm_stops_the_simulator_with_exit_0(started) -> None:
    sim = start(started, "simulate", str(RELAY))
    sim.wait_for("^simulating", timeout=PATIENCE)
    sim.process.send_signal(signal.SIGTERM)
    assert sim.process.wait(timeout=PATIENCE) == 0


@pytest.mark.parametrize("command", ["broker", "run"])
def test_sigkill_of_pyiot_takes_its_mosquitto_along(started, tmp_path: Path, command) -> None:
    data = tmp_path / "data"
    if command == "broker":
        pyiot = start(started, "broker", "--port", "0", "--data", str(data))
        pyiot.wait_for("^broker:", timeout=PATIENCE)
    else:
        pyiot = start(started, "run", str(RELAY), "--simulate", "--data", str(data))
        pyiot.wait_for("^ready", timeout=PATIENCE)
    record = json.loads((data / "stack.json").read_text())
    assert record["pid"] == pyiot.process.pid
    broker_pid = record["mosquitto_pid"]
    assert mosquittos_of(data) == [broker_pid]
    pyiot.process.kill()
    pyiot.process.wait()
    wait_until(lambda: gone(broker_pid), what=f"mosquitto pid {broker_pid} to exit")
    # The record it left is stale (its lock died with it): a new stack takes the folder.
    again = start(started, "broker", "--port", "0", "--data", str(data))
    again.wait_for("^broker:", timeout=PATIENCE)
    again.process.send_signal(signal.SIGTERM)
    assert again.process.wait(timeout=PATIENCE) == 0
