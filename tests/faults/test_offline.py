"""Offline when pyiot is gone: a clean stop reports every component offline itself; a pyiot
killed outright leaves an MQTT last will, which the local shadow service writes into the
shadow. Real mosquitto, real `pyiot run` processes, real awsiotsdk clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from pyiot.local import LocalStack
from pyiot.runtime.broker import CONNECTION_LOST, will_topic
from pyiot.runtime.thing import STOPPED
from tests.e2e.conftest import RELAY, CliProcess
from tests.faults.conftest import TIMEOUT, GatewayRun, LogLines, relay_program
from tests.local.conftest import MqttProbe
from tests.shadow.conftest import App, status
from tests.waiting import PATIENCE, wait_until

pytestmark = TIMEOUT

# devices/relay.iot: thing relayOne, component relay1.
THING, COMPONENT = "relayOne", "relay1"


def components(state: dict[str, Any]) -> dict[str, Any]:
    return status(state).get("components", {})


def stored_components(stack: LocalStack, thing: str = THING) -> dict[str, Any]:
    assert stack.store is not None
    document = stack.store.load(thing)
    if document is None or document.reported is None:
        return {}
    return document.reported.get("pyiot", {}).get("components", {})


def status_update(entries: dict[str, Any], **reported: Any) -> dict[str, Any]:
    """A shadow update (or a will's entry for one thing) of `pyiot.components`."""
    return {"state": {"reported": {"pyiot": {"components": entries}, **reported}}}


def online_in(stack: LocalStack) -> bool:
    return stored_components(stack).get(COMPONENT, {}).get("online") is True


# ---------------------------------------------------------------------------- in process
def test_gateway_stop_reports_every_component_offline(own_stack: LocalStack, tmp_path: Path):
    from pyiot.sim import DeviceSimulator, PortSimulator

    program = relay_program("cleanstop")

    async def scenario() -> dict[str, Any]:
        sim = PortSimulator([DeviceSimulator("relay1", program.model.devices["Relay"])])
        url = await sim.serve_tcp()
        try:
            async with GatewayRun(own_stack, program, {"relay1": url}) as run:
                app = run.apps["cleanstop"]
                await app.until(lambda s: components(s).get("relay1", {}).get("online") is True)
                assert run.gateway is not None
                await run.gateway.stop()
                run.gateway = None
                # The report went out before the connection closed: the shadow says so now.
                return (await app.document())["reported"]
        finally:
            await sim.close()

    reported = asyncio.run(scenario())
    assert reported["pyiot"]["components"]["relay1"] == {"online": False, "error": STOPPED}


def test_stop_with_the_shadow_service_gone_finishes(
    own_stack: LocalStack, pyiot_log: LogLines
) -> None:
    """Nobody answers the offline report: the stop gives up on it after its bounded wait
    (no hang), says so, and the rest of the shutdown goes on."""
    from pyiot.sim import DeviceSimulator, PortSimulator

    program = relay_program("noservice")

    async def scenario() -> None:
        sim = PortSimulator([DeviceSimulator("relay1", program.model.devices["Relay"])])
        url = await sim.serve_tcp()
        try:
            async with GatewayRun(own_stack, program, {"relay1": url}) as run:
                app = run.apps["noservice"]
                await app.until(lambda s: components(s).get("relay1", {}).get("online") is True)
                assert own_stack.shadow_service is not None and run.gateway is not None
                own_stack.shadow_service.stop()
                await run.gateway.stop()
                run.gateway = None
        finally:
            await sim.close()

    asyncio.run(scenario())
    assert pyiot_log.matching("could not report offline")


def relay_online(document: dict[str, Any]) -> Any:
    """`relay1`'s online flag in an `update/documents` message."""
    return components(document["current"]["state"]).get("relay1", {}).get("online")


def test_a_will_applied_while_pyiot_runs_is_corrected(own_stack: LocalStack) -> None:
    """A will the broker publishes after this connection came back (or anyone's forged one)
    cannot leave a running component shown offline."""
    from pyiot.sim import DeviceSimulator, PortSimulator

    program = relay_program("healing")
    probe = MqttProbe(own_stack.host, own_stack.port)

    async def scenario() -> None:
        sim = PortSimulator([DeviceSimulator("relay1", program.model.devices["Relay"])])
        url = await sim.serve_tcp()
        try:
            async with GatewayRun(own_stack, program, {"relay1": url}) as run:
                app: App = run.apps["healing"]
                await app.until(lambda s: components(s).get("relay1", {}).get("online") is True)
                offline = {"online": False, "error": CONNECTION_LOST}
                will = {"things": {"healing": status_update({"relay1": offline})}}
                documents = "$aws/things/healing/shadow/update/documents"
                probe.subscribe(documents)
                probe.publish(will_topic("someone"), will)
                # Every document, in order, read off the loop (pyiot runs on it meanwhile):
                # the will's (after any of pyiot's own still on their way), then pyiot's
                # correction.
                async def next_online() -> Any:
                    document = await asyncio.to_thread(probe.expect, documents, PATIENCE)
                    return relay_online(document)

                while await next_online() is not False:
                    pass
                while await next_online() is not True:
                    pass  # documents of other updates made before pyiot saw the will's
                await app.until(lambda s: components(s)["relay1"]["online"] is True)
        finally:
            await sim.close()

    try:
        asyncio.run(scenario())
    finally:
        probe.close()


def test_a_will_marks_only_listed_components_of_existing_shadows(own_stack: LocalStack) -> None:
    probe = MqttProbe(own_stack.host, own_stack.port)
    try:
        update = "$aws/things/listed/shadow/update"
        probe.subscribe(f"{update}/documents")
        probe.request(update, status_update({"a": {"online": True, "error": None}}))
        probe.expect(f"{update}/documents")  # that update's own
        entry = {"online": False, "error": "x" * 5000}
        will = {
            "things": {
                "listed": status_update({"a": entry, "b": entry}, power=True),
                "nosuchthing": status_update({"a": entry}),
                "bad/name": {},
            }
        }
        probe.publish(will_topic("forger"), will)
        documents = probe.expect(f"{update}/documents")
        reported = documents["current"]["state"]["reported"]
        # Only the listed component, only `online` and a short error: nothing added.
        assert set(reported) == {"pyiot"}
        assert set(reported["pyiot"]["components"]) == {"a"}
        shown = reported["pyiot"]["components"]["a"]
        assert shown["online"] is False and len(shown["error"]) <= 200
        probe.publish(will_topic("forger"), b"not json")
        probe.publish(will_topic("forger"), json.dumps({"things": []}))
        # The service goes on, and made no shadow for the thing it did not know.
        assert probe.request("$aws/things/nosuchthing/shadow/get", reply="rejected")["code"] == 404
    finally:
        probe.close()


def test_the_python_api_stop_reports_offline(own_stack: LocalStack) -> None:
    """The original pyIOT API: `Thing.start()` blocks, `Thing.stop()` makes it return."""
    import serial

    from pyiot import Thing
    from tests.legacy.conftest import DeviceRoom, started
    from tests.legacy.test_readme_relay import Relay

    room = DeviceRoom()
    try:
        _, port = room.serve("relay.iot")
        relay = Relay(name="relay", stream=serial.Serial(port, 9600, timeout=0.5))
        thing = Thing(thingName="legacyRelay", components=relay, broker=own_stack.url)
        with started(thing):
            wait_until(
                lambda: stored_components(own_stack, "legacyRelay").get("relay", {}).get("online"),
                what="relay online",
            )
        # start() has returned: the report was made before the connection closed.
        shown = stored_components(own_stack, "legacyRelay")["relay"]
        assert shown == {"online": False, "error": STOPPED}
    finally:
        room.close()


# ---------------------------------------------------------------------------- processes
@pytest.fixture
def run_relay(own_stack: LocalStack):
    """`pyiot run devices/relay.iot --simulate` against this test's own stack."""
    started: list[CliProcess] = []

    def start() -> CliProcess:
        process = CliProcess("run", str(RELAY), "--simulate", "--broker", own_stack.url)
        started.append(process)
        process.wait_for(r"^ready", timeout=60)
        wait_until(lambda: online_in(own_stack), what="relay1 online in the shadow")
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopping_pyiot_run_reports_offline(own_stack: LocalStack, run_relay, sig) -> None:
    process = run_relay()
    process.process.send_signal(sig)
    assert process.process.wait(timeout=60) == 0
    # Said before pyiot disconnected: no waiting on the service.
    assert stored_components(own_stack)[COMPONENT] == {"online": False, "error": STOPPED}


def test_pyiot_run_killed_outright_is_marked_offline_by_its_will(
    own_stack: LocalStack, run_relay
) -> None:
    process = run_relay()
    os.kill(process.process.pid, signal.SIGKILL)
    assert process.process.wait(timeout=60) == -signal.SIGKILL
    wait_until(
        lambda: stored_components(own_stack).get(COMPONENT, {}).get("online") is False,
        what="relay1 offline through the will",
    )
    assert stored_components(own_stack)[COMPONENT]["error"] == CONNECTION_LOST
    # A pyiot started again brings it back online.
    run_relay()
