"""Shadows survive restarts: of the service, a ``kill -9`` of it, and of the broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pyiot
from pyiot.local import Mosquitto, ShadowService, ShadowStore
from pyiot.local.mosquitto import free_port

pytestmark = pytest.mark.timeout(30)
THING = "persisted"


def topic(op: str) -> str:
    return f"$aws/things/{THING}/shadow/{op}"


@pytest.fixture
def broker(mosquitto_path: str, tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(free_port(None), workdir=tmp_path / "broker") as running:
        yield running


def test_restarted_service_serves_the_stored_documents(broker, make_probe, tmp_path) -> None:
    db = tmp_path / "shadows.sqlite3"
    probe = make_probe(broker.host, broker.port)

    with ShadowStore(db) as store, ShadowService(broker.host, broker.port, store):
        probe.request(topic("update"), {"state": {"desired": {"mode": "eco"}}})
        probe.request(topic("update"), {"state": {"reported": {"mode": "off"}}})
        gone = "$aws/things/gone/shadow"
        probe.request(f"{gone}/update", {"state": {"reported": {"x": 1}}})
        probe.request(f"{gone}/update", {"state": {"reported": {"x": 2}}})
        probe.request(f"{gone}/delete")

    with ShadowStore(db) as store, ShadowService(broker.host, broker.port, store):
        got = probe.request(topic("get"))
        assert got["state"] == {
            "desired": {"mode": "eco"},
            "reported": {"mode": "off"},
            "delta": {"mode": "eco"},
        }
        assert got["version"] == 2
        assert probe.request(f"{gone}/get", reply="rejected")["code"] == 404
        # The deleted shadow's version survived the restart too.
        assert probe.request(f"{gone}/update", {"state": {"reported": {"x": 3}}})["version"] == 3


def test_kill_9_loses_no_accepted_update(broker, make_probe, tmp_path) -> None:
    db = tmp_path / "shadows.sqlite3"
    env = dict(os.environ, PYTHONPATH=str(Path(pyiot.__file__).resolve().parents[1]))
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyiot.local.shadow_service",
            "--host",
            broker.host,
            "--port",
            str(broker.port),
            "--db",
            str(db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        probe = make_probe(broker.host, broker.port)
        for n in range(20):
            accepted = probe.request(topic("update"), {"state": {"reported": {"n": n}}})
        assert accepted["version"] == 20
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(5)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with ShadowStore(db) as store, ShadowService(broker.host, broker.port, store):
        got = probe.request(topic("get"))
    assert got["state"]["reported"] == {"n": 19}
    assert got["version"] == 20


def test_service_comes_back_after_the_broker_restarts(broker, make_probe, tmp_path) -> None:
    with (
        ShadowStore(tmp_path / "s.sqlite3") as store,
        ShadowService(broker.host, broker.port, store),
    ):
        make_probe(broker.host, broker.port).request(
            topic("update"), {"state": {"reported": {"up": True}}}
        )
        broker.stop()
        broker.start()
        probe = make_probe(broker.host, broker.port)
        probe.subscribe(topic("get/accepted"))
        # Requests made before the service has resubscribed are lost (as with AWS while
        # disconnected), so ask until it answers.
        deadline = time.monotonic() + 10
        while True:
            probe.publish(topic("get"))
            try:
                got = probe.expect(topic("get/accepted"), timeout=0.5)
                break
            except AssertionError:
                assert time.monotonic() < deadline, "service did not come back"
        assert got["state"]["reported"] == {"up": True}
