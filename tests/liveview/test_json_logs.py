"""`pyiot run --log-format json`: every stderr line is one JSON object; stdout keeps its lines."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RELAY, ROOT, ShadowApp, clean_environment, pyiot_command
from tests.waiting import PATIENCE

pytestmark = pytest.mark.timeout(60)


class Run:
    """`pyiot run ...` with stdout and stderr kept apart, each collected line by line."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen(
            pyiot_command("run", *args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=clean_environment(),
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[None] = queue.Queue()
        for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True).start()

    def _pump(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            self._lines.put(None)

    def wait_for(self, lines: list[str], pattern: str, timeout: float = PATIENCE) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(lines):
                if found := re.search(pattern, line):
                    return found
            if self.process.poll() is not None and self._lines.empty():
                break
            with contextlib.suppress(queue.Empty):
                self._lines.get(timeout=0.2)
        raise AssertionError(f"no {pattern!r}; stdout: {self.out}; stderr: {self.err}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        return self.process.returncode


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.stop()


def json_lines(lines: list[str]) -> list[dict[str, Any]]:
    """Each line parsed as JSON: a line that is not one object fails the test."""
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert isinstance(entry, dict)
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    return entries


def test_rejected_desired_is_one_json_line_tagged_with_the_thing(runs, tmp_path: Path) -> None:
    run = Run(str(RELAY), "--simulate", "--log-format", "json", "--data", str(tmp_path))
    runs.append(run)
    broker = run.wait_for(run.out, r"^local broker: (mqtt://\S+) \(shadows in ").group(1)
    run.wait_for(run.out, r"^thing relayOne: relay1 on socket://127\.0\.0\.1:\d+$")
    run.wait_for(run.out, r"^ready; try: pyiot shadow get relayOne")
    app = ShadowApp(broker, "relayOne")
    try:
        app.set_desired(relayState="maybe")
        run.wait_for(run.err, r"rejected desired relayState")
        app.set_desired(relayState=True)
        run.wait_for(run.out, r"^simulator: relay1\.relayState = true$")
    finally:
        app.close()
    assert run.stop() == 0
    entries = json_lines(run.err)
    (rejection,) = [e for e in entries if "rejected desired" in e["message"]]
    assert rejection["level"] == "WARNING"
    assert rejection["logger"] == "pyiot.runtime.thing"
    assert rejection["thing"] == "relayOne"
    assert rejection["message"] == (
        "relayOne: rejected desired relayState = 'maybe': expected true or false, got 'maybe'"
    )


def test_device_warnings_name_the_component(runs, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on: the device is unplugged
        probe.bind(("127.0.0.1", 0))
        dead = f"socket://127.0.0.1:{probe.getsockname()[1]}"
    run = Run(
        str(RELAY),
        "--device",
        f"relay1={dead}",
        "--log-format",
        "json",
        "-v",
        "--data",
        str(tmp_path),
    )
    runs.append(run)
    run.wait_for(run.err, r"cannot open")
    run.wait_for(run.out, r"^ready; try: pyiot shadow get relayOne")
    assert run.stop() == 0
    entries = json_lines(run.err)
    (lost,) = [e for e in entries if "cannot open" in e["message"]]
    assert lost["level"] == "WARNING"
    assert lost["component"] == "relay1" and lost["thing"] == "relayOne"
    assert lost["message"].startswith(f"relay1: cannot open {dead}: ")
    assert any(e["level"] == "INFO" for e in entries)  # -v: INFO records are JSON too
