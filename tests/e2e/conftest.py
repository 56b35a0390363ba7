"""Run the `pyiot` command line as a user would, and talk MQTT to what it starts."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.waiting import PATIENCE

ROOT = Path(__file__).resolve().parents[2]
RELAY = ROOT / "devices" / "relay.iot"


def pyiot_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pyiot", *args]


# A developer's own settings must not leak into tests: no PYIOT_* variables, and an empty
# config folder (a ~/.config/pyiot/config.toml naming AWS would send `pyiot run` there).
_CONFIG_HOME = tempfile.mkdtemp(prefix="pyiot-test-config-")


def clean_environment() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYIOT_")}
    environment["XDG_CONFIG_HOME"] = _CONFIG_HOME
    return environment


def run_pyiot(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a short pyiot command to completion."""
    return subprocess.run(
        pyiot_command(*args),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd or ROOT,
        env=clean_environment(),
    )


class CliProcess:
    """A long-running pyiot command whose output lines are collected as they come."""

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        environment = clean_environment()
        environment.update(env or {})
        self.process = subprocess.Popen(
            pyiot_command(*args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=environment,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = PATIENCE) -> re.Match[str]:
        """The first output line (old or new) matching `pattern`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for line in self.lines[checked:]:
                found = regex.search(line)
                if found:
                    return found
            checked = len(self.lines)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no line matching {pattern!r} in {timeout}s; output:\n" + "\n".join(self.lines)
                )
            try:
                self.lines.append(self._queue.get(timeout=min(remaining, 0.2)))
            except queue.Empty:
                if self.process.poll() is not None and self._queue.empty():
                    raise AssertionError(
                        f"pyiot exited ({self.process.returncode}) before {pattern!r}; output:\n"
                        + "\n".join(self.lines)
                    ) from None

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def cli() -> Iterator[Callable[..., CliProcess]]:
    """Start pyiot commands; each is stopped (SIGTERM) when the test ends."""
    started: list[CliProcess] = []

    def start(*args: str, **kwargs: Any) -> CliProcess:
        process = CliProcess(*args, **kwargs)
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()


class ShadowApp:
    """The application side, as a plain MQTT client: set desired, watch documents."""

    def __init__(self, broker_url: str, thing: str):
        host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
        self.thing = thing
        self.documents: queue.Queue[dict[str, Any]] = queue.Queue()
        self.latest: dict[str, Any] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex)
        self.client.on_message = self._on_message
        # Like every client pyiot owns: no Nagle delay on small publishes.
        self.client.on_socket_open = lambda client, userdata, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(host, int(port))
        self.client.loop_start()
        self.client.subscribe(f"$aws/things/{thing}/shadow/update/documents", qos=1)
        assert subscribed.wait(PATIENCE), "could not subscribe to the shadow documents topic"

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        document = json.loads(message.payload)
        self.latest = document["current"]
        self.documents.put(document["current"])

    def set_desired(self, **values: Any) -> None:
        payload = json.dumps({"state": {"desired": values}})
        self.client.publish(f"$aws/things/{self.thing}/shadow/update", payload, qos=1)

    def wait_until(self, check: Callable[[dict[str, Any]], bool], timeout: float = PATIENCE) -> dict:
        """The first shadow document (current state) for which `check` holds."""
        deadline = time.monotonic() + timeout
        if self.latest and check(self.latest):
            return self.latest
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                current = self.documents.get(timeout=remaining)
            except queue.Empty:
                break
            if check(current):
                return current
        raise AssertionError(f"shadow never reached the expected state; last: {self.latest}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def shadow_app() -> Iterator[Callable[[str, str], ShadowApp]]:
    apps: list[ShadowApp] = []

    def connect(broker_url: str, thing: str) -> ShadowApp:
        app = ShadowApp(broker_url, thing)
        apps.append(app)
        return app

    yield connect
    for app in apps:
        app.close()


def reported(document: dict[str, Any]) -> dict[str, Any]:
    return document.get("state", {}).get("reported", {})


def desired(document: dict[str, Any]) -> dict[str, Any]:
    return document.get("state", {}).get("desired", {}) or {}
