"""The rest of the original API on pyiot's runtime: custom stream objects, asynchronous
components, `ready()`, `onChange(self, property, value)` and `updateComponent()`, each against
pyiot's relay simulator with the real broker and shadow service."""

from __future__ import annotations

import socket

import pytest

from pyiot import Component, Thing
from tests.e2e.conftest import desired, reported
from tests.legacy.conftest import started
from tests.legacy.test_readme_relay import Relay
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


class SocketStream:
    """A stream of the user's own making: `read()` returns what came (b'' after 0.1 s of
    nothing), `write()` sends, `close()` hangs up. No pyserial involved."""

    def __init__(self, url: str):
        host, port = url.removeprefix("socket://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.sock.settimeout(0.1)
        self.closed = False

    def read(self, size: int = 1) -> bytes:
        try:
            return self.sock.recv(size)
        except TimeoutError:
            return b""

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.closed = True
        self.sock.close()


def relay_state(state: dict) -> object:
    return reported(state).get("relayState")


def test_custom_stream_object(stack, devices, app) -> None:
    sim, url = devices.serve("relay.iot", tcp=True)
    shadow = app("relayOne")
    stream = SocketStream(url)
    relay = Relay(name="relay", stream=stream, synchronous=True)
    with started(Thing(thingName="relayOne", components=relay, broker=stack.url), relay.exit):
        shadow.wait_until(lambda d: relay_state(d) is False)
        shadow.set_desired(relayState=True)
        shadow.wait_until(lambda d: relay_state(d) is True and not desired(d))
        devices.wait_value(sim, "relay1", "relayState", True)
    assert stream.closed


def test_asynchronous_component_hears_the_device_unprompted(stack, devices, app) -> None:
    sim, url = devices.serve("relay.iot", tcp=True)
    shadow = app("relayOne")
    # A URL as the stream: pyiot opens it with its own non-blocking transport.
    relay = Relay(name="relay", stream=url, synchronous=False, queryTiming=60)
    with started(Thing(thingName="relayOne", components=relay, broker=stack.url), relay.exit):
        shadow.wait_until(lambda d: relay_state(d) is False)  # queried once connected
        devices.change(sim, "relay1", "relayState", True)  # the device announces RELAYON
        shadow.wait_until(lambda d: relay_state(d) is True)
        shadow.set_desired(relayState=False)
        shadow.wait_until(lambda d: relay_state(d) is False and not desired(d))
        devices.wait_value(sim, "relay1", "relayState", False)


class BusyRelay(Relay):
    """A relay that is busy (say, recalibrating) while `busy` is set."""

    busy = False
    held = 0  # how many times a command was held back

    def ready(self):
        if self.busy:
            self.held += 1
            return 0.1
        return False


def test_commands_wait_while_ready_says_busy(stack, devices, app) -> None:
    sim, port = devices.serve("relay.iot")
    shadow = app("relayOne")
    relay = BusyRelay(name="relay", stream=port, synchronous=True)
    with started(Thing(thingName="relayOne", components=relay, broker=stack.url), relay.exit):
        shadow.wait_until(lambda d: relay_state(d) is False)
        relay.busy = True
        shadow.set_desired(relayState=True)
        wait_until(lambda: relay.held >= 2, what="the command held back twice")
        assert devices.value(sim, "relay1", "relayState") is False
        assert desired(shadow.latest) == {"relayState": True}
        relay.busy = False
        shadow.wait_until(lambda d: relay_state(d) is True and not desired(d))
        devices.wait_value(sim, "relay1", "relayState", True)


class Lamp(Component):
    """A second relay, whose output is a lamp."""

    @Component.componentToProperty("lampState", "^RELAY(ON|OFF)$")
    def toLampState(self, property, value):  # noqa: N802
        return {"ON": True, "OFF": False}[value]

    @Component.propertyToComponent("lampState", "RELAY{0}\n")
    def fromLampState(self, value):  # noqa: N802
        return {True: "ON", False: "OFF"}[value]

    def queryStatus(self):  # noqa: N802
        return "RELAY?\n"


class HallThing(Thing):
    """The lamp follows the relay; the second form of onChange, one call per change."""

    def onChange(self, property, value):  # noqa: N802
        if property == "relayState":
            return [("lampState", value), ("fan", value)]
        return None


def test_on_change_per_property_and_update_component(stack, devices, app, legacy_log) -> None:
    relay_sim, relay_port = devices.serve("relay.iot")
    lamp_sim, lamp_port = devices.serve("relay.iot")
    shadow = app("hall")
    relay = Relay(name="relay", stream=relay_port, synchronous=True)
    lamp = Lamp(name="lamp", stream=lamp_port, synchronous=True)
    hall = HallThing(thingName="hall", components=[relay, lamp], broker=stack.url)
    with started(hall):
        shadow.wait_until(lambda d: reported(d).get("lampState") is False)
        shadow.set_desired(relayState=True)
        devices.wait_value(lamp_sim, "relay1", "relayState", True)
        shadow.wait_until(lambda d: reported(d).get("lampState") is True)
        assert "no component has fan" in legacy_log.wait_for("onChange asked for fan = True")
        # Another thread of the application switches the lamp directly.
        lamp.updateComponent("lampState", False)
        devices.wait_value(lamp_sim, "relay1", "relayState", False)
        shadow.wait_until(lambda d: reported(d).get("lampState") is False)
        assert hall._localShadow == {"relayState": True, "lampState": False}


class UnpluggableStream(SocketStream):
    """A stream that can be unplugged (its next read raises) and opened again."""

    def __init__(self, url: str):
        super().__init__(url)
        self.url = url
        self.unplugged = False
        self.opened = 1

    def read(self, size: int = 1) -> bytes:
        if self.unplugged:
            raise OSError("device unplugged")
        return super().read(size)

    def open(self) -> None:
        self.__init__(self.url)  # type: ignore[misc]
        self.opened = 2


def test_a_stream_that_fails_is_opened_again(stack, devices, app) -> None:
    sim, url = devices.serve("relay.iot", tcp=True)
    shadow = app("relayOne")
    stream = UnpluggableStream(url)
    relay = Relay(name="relay", stream=stream, synchronous=True)

    def online(state: dict) -> object:
        return reported(state).get("pyiot", {}).get("components", {}).get("relay", {}).get("online")

    with started(Thing(thingName="relayOne", components=relay, broker=stack.url), relay.exit):
        shadow.wait_until(lambda d: relay_state(d) is False and online(d) is True)
        stream.unplugged = True
        state = shadow.wait_until(lambda d: online(d) is False)
        assert "unplugged" in reported(state)["pyiot"]["components"]["relay"]["error"]
        shadow.wait_until(lambda d: online(d) is True, timeout=10)
        assert stream.opened == 2
        shadow.set_desired(relayState=True)
        shadow.wait_until(lambda d: relay_state(d) is True and not desired(d))
