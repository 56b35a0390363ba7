"""Shared pieces of the Home Assistant tests: the discovery entities of a file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from pyiot.compiler import load_program
from pyiot.runtime.ha_discovery import Entity, Topics, thing_entities
from tests.waiting import PATIENCE, wait_until

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EVERYTHING = HERE / "everything.iot"


INSTALL = (
    "/root/.pyenv/versions/3.13.0/bin/python -m venv .ha-venv && .ha-venv/bin/pip install "
    "'homeassistant==2025.4.*' 'home-assistant-frontend==20250411.0' 'paho-mqtt==2.1.0'"
)


def ha_python(*modules: str) -> str:
    """The Python that has Home Assistant (and `modules`): $PYIOT_HA_PYTHON, else the
    repository's `.ha-venv`. Without one the test fails in CI (CI=true) and skips elsewhere."""
    candidates = [os.environ.get("PYIOT_HA_PYTHON", ""), str(ROOT / ".ha-venv" / "bin" / "python")]
    found = next((c for c in candidates if c and Path(c).is_file()), None)
    missing = []
    if found is not None and modules:
        probe = "import importlib.util as u, sys; print(*[m for m in sys.argv[1:] if not u.find_spec(m)])"
        result = subprocess.run([found, "-c", probe, *modules], capture_output=True, text=True)
        missing = result.stdout.split()
    if found is not None and not missing:
        return found
    what = f"{found} lacks {', '.join(missing)}" if found else "no Python with Home Assistant"
    message = f"{what}: set PYIOT_HA_PYTHON, or make one with `{INSTALL}` (Python >= 3.13)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run this test (.ci/run installs it)")
    pytest.skip(message)


def entities_of(path: Path, gateway: str = "gw", prefix: str = "homeassistant") -> list[Entity]:
    """Every discovery config `pyiot run --homeassistant` would publish for the file."""
    model = load_program(str(path)).model
    found: list[Entity] = []
    for thing in model.things.values():
        devices = {c.name: model.devices[c.device] for c in thing.components.values()}
        found += thing_entities(thing.name, devices, Topics(gateway, prefix))
    return found


# The e2e helpers: run the `pyiot` command line and act as the shadow application.
from tests.e2e.conftest import cli, shadow_app  # noqa: E402, F401 - fixtures used here too


@dataclass
class Message:
    topic: str
    payload: str
    retained: bool


class HomeAssistantClient:
    """Home Assistant's side of MQTT discovery, as a plain MQTT client: it sees every
    config, state and availability message, and publishes commands and its birth."""

    def __init__(self, broker_url: str, prefix: str = "homeassistant"):
        host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
        self.prefix = prefix
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect(host, int(port))
        self.client.loop_start()
        self.client.subscribe([(f"{prefix}/#", 1), ("pyiot/#", 1)])
        assert subscribed.wait(PATIENCE), "could not subscribe"

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Message(message.topic, message.payload.decode(), bool(message.retain))
            )

    def seen(self, topic: str, payload: str | None = None, retained: bool | None = None) -> list:
        with self._lock:
            return [
                m
                for m in self.messages
                if m.topic == topic
                and (payload is None or m.payload == payload)
                and (retained is None or m.retained == retained)
            ]

    def latest(self, topic: str) -> str | None:
        found = self.seen(topic)
        return found[-1].payload if found else None

    def wait_for(self, topic: str, payload: str | None = None, retained: bool | None = None):
        """The first message on `topic` (with that payload) seen so far or later."""
        wait_until(lambda: self.seen(topic, payload, retained), what=f"{topic} = {payload}")
        return self.seen(topic, payload, retained)[0]

    def wait_latest(self, topic: str, payload: str) -> None:
        wait_until(lambda: self.latest(topic) == payload, what=f"latest {topic} = {payload}")

    def config(self, topic: str) -> dict:
        return json.loads(self.wait_for(topic).payload)

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(PATIENCE)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def home_assistant() -> Iterator[Callable[..., HomeAssistantClient]]:
    clients: list[HomeAssistantClient] = []

    def connect(broker_url: str, prefix: str = "homeassistant") -> HomeAssistantClient:
        client = HomeAssistantClient(broker_url, prefix)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def handles_sigterm(pid: int) -> bool:
    """Whether the process catches SIGTERM yet (Linux: the SigCgt mask of /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except OSError:
        pass
    return False


def stop_cleanly(run: Any) -> int:
    """Stop a `pyiot run` with SIGTERM once it handles SIGTERM (a signal that lands before
    pyiot has installed its handler kills it, which is not what these tests are about)."""
    wait_until(lambda: handles_sigterm(run.process.pid), what="pyiot handling SIGTERM")
    return run.stop()
