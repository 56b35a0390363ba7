"""The relay of the original pyIOT README, run as the README runs it: a pyserial port (here the
pseudo-terminal of pyiot's simulator of devices/relay.iot), a synchronous component, a Thing
whose `start()` blocks until `exit()`. The application only talks to the Device Shadow."""

from __future__ import annotations

import json
import os

import pytest
import serial

from pyiot import Component, Thing
from pyiot.local import LocalStack, TlsFiles
from tests.e2e.conftest import ShadowApp, desired, reported
from tests.legacy.conftest import started
from tests.shadow.certs import make_pki
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


# The README's class, with its bug fixed: it tested `if val:`, so False (the relay off) was
# "not a valid value" and the shadow could never show the relay off.
class Relay(Component):
    @Component.componentToProperty("relayState", "^RELAY(ON|OFF)$")
    def toRelayState(self, property, value):  # noqa: N802
        val = {"ON": True, "OFF": False}.get(value)
        if val is not None:
            return val
        raise ValueError(f"{value} is not a valid value for property {property}")

    @Component.propertyToComponent("relayState", "RELAY{0}")
    def fromRelayState(self, value):  # noqa: N802
        val = {True: "ON", False: "OFF"}.get(value)
        if val:
            return val
        raise ValueError(f"{value} is not a valid relayState")

    def queryStatus(self):  # noqa: N802
        return "RELAY?\n"


# The README's class exactly as published.
class PublishedRelay(Component):
    @Component.componentToProperty("relayState", "^RELAY(ON|OFF)$")
    def toRelayState(self, property, value):  # noqa: N802
        val = {"ON": True, "OFF": False}.get(value)
        if val:
            return val
        raise ValueError(f"{value} is not a valid value for property {property}")

    @Component.propertyToComponent("relayState", "RELAY{0}")
    def fromRelayState(self, value):  # noqa: N802
        val = {True: "ON", False: "OFF"}.get(value)
        if val:
            return val
        raise ValueError(f"{value} is not a valid relayState")

    def queryStatus(self):  # noqa: N802
        return "RELAY?\n"


def relay_state(state: dict) -> object:
    return reported(state).get("relayState")


def test_readme_relay_desired_to_device_to_reported(stack, devices, app) -> None:
    sim, port = devices.serve("relay.iot")
    shadow = app("relayOne")
    # The README's main program, with the simulator's port for /dev/ttyUSB0 and the local
    # broker for the AWS endpoint.
    ser = serial.Serial(port, 9600, timeout=0.5)
    relayComponent = Relay(name="RelayComponent1", stream=ser, synchronous=True)  # noqa: N806
    relayThing = Thing(thingName="relayOne", components=relayComponent, broker=stack.url)  # noqa: N806
    with started(relayThing, stop=relayComponent.exit):
        state = shadow.wait_until(lambda d: relay_state(d) is False)
        assert reported(state)["pyiot"]["components"] == {"RelayComponent1": {"online": True}}

        shadow.set_desired(relayState=True)
        shadow.wait_until(lambda d: relay_state(d) is True and not desired(d))
        devices.wait_value(sim, "relay1", "relayState", True)

        # False is a value: the relay switches off and the shadow says so.
        shadow.set_desired(relayState=False)
        shadow.wait_until(lambda d: relay_state(d) is False and not desired(d))
        devices.wait_value(sim, "relay1", "relayState", False)
    assert not ser.is_open  # exit() closed the stream, as the original did


def test_readme_relay_as_published_never_reports_off(stack, devices, app, legacy_log) -> None:
    sim, port = devices.serve("relay.iot")
    devices.preset(sim, "relay1", "relayState", True)
    shadow = app("relayOne")
    relay = PublishedRelay(
        name="RelayComponent1", stream=serial.Serial(port, 9600, timeout=0.5), synchronous=True
    )
    thing = Thing(thingName="relayOne", components=relay, broker=stack.url)
    with started(thing, stop=relay.exit):
        shadow.wait_until(lambda d: relay_state(d) is True)
        shadow.set_desired(relayState=False)
        devices.wait_value(sim, "relay1", "relayState", False)  # the command works ...
        line = legacy_log.wait_for("could not read relayState from 'OFF'")
        assert "PublishedRelay.toRelayState" in line
        assert "OFF is not a valid value for property relayState" in line
        # ... but the class cannot say "off": the shadow keeps showing the relay on.
        shadow.wait_until(lambda d: desired(d).get("relayState") is False)
        state = shadow.wait_until(lambda d: not desired(d))
        assert relay_state(state) is True


def test_value_the_method_refuses_is_rejected_in_the_shadow(stack, devices, app) -> None:
    sim, port = devices.serve("relay.iot")
    shadow = app("relayOne")
    relay = Relay(name="relay", stream=serial.Serial(port, 9600, timeout=0.5), synchronous=True)
    with started(Thing(thingName="relayOne", components=relay, broker=stack.url), relay.exit):
        shadow.wait_until(lambda d: relay_state(d) is False)
        shadow.set_desired(relayState="maybe")
        state = shadow.wait_until(lambda d: "rejected" in reported(d).get("pyiot", {}))
        assert reported(state)["pyiot"]["rejected"]["relayState"] == {
            "value": "maybe",
            "reason": "relayState: maybe is not a valid relayState",
        }
        # The rest keeps working, and a good value clears the rejection.
        shadow.set_desired(relayState=True)
        state = shadow.wait_until(lambda d: relay_state(d) is True and not desired(d))
        assert "rejected" not in reported(state)["pyiot"]


class BlinkingRelay(Relay):
    """Asks for a mode this relay does not have: the device answers ERR."""

    @Component.propertyToComponent("relayState", "RELAY{0}")
    def fromRelayState(self, value):  # noqa: N802
        return "BLINK" if value == "blink" else super().fromRelayState(value)


def test_device_refusing_a_command_is_a_rejection(stack, devices, app) -> None:
    sim, port = devices.serve("relay.iot")
    shadow = app("relayOne")
    relay = BlinkingRelay(name="relay", stream=port, synchronous=True)  # a path: pyiot opens it
    with started(Thing(thingName="relayOne", components=relay, broker=stack.url), relay.exit):
        shadow.wait_until(lambda d: relay_state(d) is False)
        shadow.set_desired(relayState="blink")
        state = shadow.wait_until(lambda d: "rejected" in reported(d).get("pyiot", {}))
        reason = reported(state)["pyiot"]["rejected"]["relayState"]["reason"]
        assert reason == "relay: device answered 'ERR' to 'RELAYBLINK'"
        shadow.set_desired(relayState=True)
        shadow.wait_until(lambda d: relay_state(d) is True and not desired(d))


def test_change_at_the_device_is_found_by_the_next_query(stack, devices, app) -> None:
    sim, port = devices.serve("relay.iot")
    shadow = app("relayOne")
    relay = Relay(
        name="relay",
        stream=serial.Serial(port, 9600, timeout=0.5),
        synchronous=True,
        queryTiming=0.2,
    )
    with started(Thing(thingName="relayOne", components=relay, broker=stack.url), relay.exit):
        shadow.wait_until(lambda d: relay_state(d) is False)
        # Switched by hand and not announced: only a query can find it.
        devices.preset(sim, "relay1", "relayState", True)
        shadow.wait_until(lambda d: relay_state(d) is True)


@pytest.fixture
def clean_env(tmp_path, monkeypatch) -> None:
    """No developer's PYIOT_* variables or ~/.config/pyiot: the Thing decides alone."""
    for key in [k for k in os.environ if k.startswith("PYIOT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))


def test_readme_thing_call_over_mutual_tls(devices, mosquitto_path, tmp_path, clean_env):
    """The README's Thing(...) with every AWS argument, against an AWS-like endpoint: mosquitto
    requiring client certificates, beside pyiot's shadow service."""
    pki = make_pki(tmp_path / "pki", client_name="relayOne")
    tls = TlsFiles(pki.ca, pki.server.cert, pki.server.key)
    with LocalStack(port=None, data_dir=tmp_path / "data", tls=tls, tls_port=None) as stack:
        sim, port = devices.serve("relay.iot")
        shadow = ShadowApp(stack.url, "relayOne")
        ser = serial.Serial(port, 9600, timeout=0.5)
        relayComponent = Relay(name="RelayComponent1", stream=ser, synchronous=True)  # noqa: N806
        relayThing = Thing(  # noqa: N806
            endpoint=f"localhost:{stack.tls_port}",
            thingName="relayOne",
            rootCAPath=str(pki.ca),
            certificatePath=str(pki.client.cert),
            privateKeyPath=str(pki.client.key),
            region="us-east-1",
            components=relayComponent,
        )
        try:
            with started(relayThing, stop=relayComponent.exit):
                shadow.set_desired(relayState=True)
                shadow.wait_until(lambda d: relay_state(d) is True and not desired(d))
                devices.wait_value(sim, "relay1", "relayState", True)
                # Over TLS, as the thing's certificate, with the thing's name as client id.
                assert (
                    "as relayOne (p5, c1, k30, u'relayOne')" in stack.mosquitto.log_path.read_text()
                )
        finally:
            shadow.client.disconnect()
            shadow.client.loop_stop()


def test_without_a_broker_the_thing_starts_the_local_stack(
    devices, mosquitto_path, tmp_path, clean_env
):
    sim, port = devices.serve("relay.iot")
    relay = Relay(name="relay", stream=port, synchronous=True)
    thing = Thing(thingName="relayOne", components=relay, data_dir=tmp_path / "shadows")
    with started(thing, stop=relay.exit):
        wait_until(lambda: thing.broker is not None, what="the thing says where its broker is")
        shadow = ShadowApp(thing.broker, "relayOne")
        try:
            shadow.set_desired(relayState=True)
            shadow.wait_until(lambda d: relay_state(d) is True and not desired(d))
        finally:
            shadow.client.disconnect()
            shadow.client.loop_stop()
    assert (tmp_path / "shadows" / "shadows.sqlite3").is_file()


def test_without_a_broker_the_thing_uses_the_stack_running_for_its_data_folder(
    devices, mosquitto_path, tmp_path, clean_env
):
    """The Python API finds the folder's running stack (`pyiot broker`, `pyiot run`, here one
    in this process) instead of starting a second one on the same shadows."""
    data = tmp_path / "shadows"
    with LocalStack(data_dir=data) as running:
        sim, port = devices.serve("relay.iot")
        relay = Relay(name="relay", stream=port, synchronous=True)
        thing = Thing(thingName="relayOne", components=relay, data_dir=data)
        with started(thing, stop=relay.exit):
            wait_until(lambda: thing.broker is not None, what="the thing's broker")
            assert thing.broker == running.url
            shadow = ShadowApp(running.url, "relayOne")
            try:
                shadow.set_desired(relayState=True)
                shadow.wait_until(lambda d: relay_state(d) is True and not desired(d))
            finally:
                shadow.client.disconnect()
                shadow.client.loop_stop()
        # Still the one stack's record: the thing started none of its own.
        assert json.loads((data / "stack.json").read_text())["url"] == running.url
