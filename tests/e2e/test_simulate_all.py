"""`pyiot run FILE --simulate` brings every device of every shipped file online.

For each file in devices/ that declares a thing: a real `pyiot run` process with its own local
stack (`--data` a fresh folder), each component on a simulator over TCP (tcp components too:
the simulator's `socket://` URL must work for `on tcp`). The shadow, read back through the
broker, must show every component online; SIGINT then stops pyiot with exit code 0. Files
whose components are on `custom` transports are skipped (a simulator cannot stand in for a
link that is Python).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from pyiot.lang import load
from tests.e2e.conftest import ROOT, CliProcess
from tests.waiting import PATIENCE, wait_until

pytestmark = pytest.mark.timeout(300)

DEVICE_FILES = sorted((ROOT / "devices").glob("*.iot"))


def _things(path: Path) -> dict[str, list[str]]:
    model = load(path.read_text(encoding="utf-8"), str(path))
    return {name: list(thing.components) for name, thing in model.things.items()}


def _custom(path: Path) -> bool:
    model = load(path.read_text(encoding="utf-8"), str(path))
    for thing in model.things.values():
        for comp in thing.components.values():
            port = thing.ports.get(comp.port) if comp.port else None
            if (port.kind if port is not None else comp.endpoint_kind) == "custom":
                return True
    return False


class ShadowReader:
    """Reads a thing's classic shadow through the broker, as any MQTT application can."""

    def __init__(self, broker_url: str):
        host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
        self.replies: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex)
        self.client.on_message = lambda c, u, m: self.replies.put(
            (m.topic, json.loads(m.payload))
        )
        self._granted: queue.Queue[int] = queue.Queue()
        self.client.on_subscribe = lambda c, u, mid, *rest: self._granted.put(mid)
        self.client.connect(host, int(port))
        self.client.loop_start()
        self._subscribed: set[str] = set()

    def get(self, thing: str) -> dict[str, Any]:
        """The shadow's `state.reported`, or {} while the thing has none."""
        base = f"$aws/things/{thing}/shadow/get"
        if thing not in self._subscribed:
            _, mid = self.client.subscribe(f"{base}/+", qos=1)
            while self._granted.get(timeout=PATIENCE) != mid:
                pass
            self._subscribed.add(thing)
        token = uuid.uuid4().hex
        self.client.publish(base, json.dumps({"clientToken": token}), qos=1)
        try:
            while True:
                topic, body = self.replies.get(timeout=5)
                if body.get("clientToken") == token:
                    break
        except queue.Empty:
            return {}
        if topic.endswith("/accepted"):
            return body.get("state", {}).get("reported", {}) or {}
        return {}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _offline(reader: ShadowReader, things: dict[str, list[str]]) -> list[str]:
    """`thing.component` of every component whose shadow does not say online (yet)."""
    missing = []
    for thing, components in things.items():
        states = (reader.get(thing).get("pyiot") or {}).get("components") or {}
        missing += [f"{thing}.{c}" for c in components if not (states.get(c) or {}).get("online")]
    return missing


@pytest.mark.parametrize("path", DEVICE_FILES, ids=[p.stem for p in DEVICE_FILES])
def test_simulate_brings_every_component_online(
    path: Path, tmp_path: Path, mosquitto_path: str
) -> None:
    things = _things(path)
    if not things:
        pytest.skip(f"{path.name} declares no thing")
    if _custom(path):
        pytest.skip(f"{path.name} has components on custom transports: nothing to simulate")
    run = CliProcess("run", str(path), "--simulate", "--data", str(tmp_path / "data"))
    try:
        broker = run.wait_for(r"(mqtt://[0-9.]+:\d+)", PATIENCE).group(1)
        run.wait_for(r"^ready", PATIENCE)
        reader = ShadowReader(broker)
        try:
            last: list[str] = []

            def all_online() -> bool:
                last[:] = _offline(reader, things)
                return not last

            try:
                wait_until(all_online, PATIENCE, f"every component of {path.name} online")
            except AssertionError:
                pytest.fail(f"offline: {last}; output:\n" + "\n".join(run.lines))
        finally:
            reader.close()
        run.process.send_signal(signal.SIGINT)
        try:
            code = run.process.wait(timeout=PATIENCE * 2)
        except subprocess.TimeoutExpired:
            pytest.fail("pyiot run did not stop on SIGINT; output:\n" + "\n".join(run.lines))
        assert code == 0, "\n".join(run.lines)
    finally:
        run.stop()
