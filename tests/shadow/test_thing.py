"""The Thing against the real local stack, a simulated device, and an awsiotsdk application.

Deltas are validated key by key; bad keys are rejected visibly while good ones are applied;
reports carry only changes; desired values set while pyiot was away are applied on start.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from pyiot.local import LocalStack
from pyiot.runtime.thing import REPORT_WINDOW
from tests.shadow.conftest import Rig, amp_program, desired, reported, status
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


def run(coro) -> Any:
    return asyncio.run(coro)


# What the first reports of a run carry: every property of amp_program's device and the
# status (pyiot.components).
FIRST_REPORT_KEYS = ("input", "power", "source", "volume", "pyiot")


def probe_saw(requests, *keys: str) -> bool:
    """pyiot's update requests, as the probe has seen them so far, include every key."""
    sent = [body["state"].get("reported", {}) for body in requests.bodies()]
    return all(any(key in reported for reported in sent) for key in keys)


def test_several_keys_at_once_one_bad_each_way(any_order_stack: LocalStack, thing_name, caplog):
    """Good keys are applied; each bad key is rejected with its reason; desired empties."""
    name = thing_name()
    caplog.set_level(logging.WARNING, logger="pyiot.runtime.thing")

    async def scenario() -> dict:
        rig = Rig(any_order_stack, amp_program(name))
        try:
            await rig.start()
            app = rig.apps[name]
            await app.until(lambda s: status(s).get("components", {}).get("amp1", {}).get("online"))
            bad = {"volume": 99, "input": 3, "bass": 4, "pyiot": {"x": 1}, "mute": "yes"}
            await app.set(power=True, source="vga", **bad)
            await app.until(
                lambda s: (
                    reported(s).get("power") is True
                    and len(status(s).get("rejected", {})) == 6
                    and not desired(s)
                )
            )
            assert rig.sims[f"{name}.amp1"].sims["amp1"].values["power"] is True
            # Everything else keeps working: a good value for a rejected key clears its error.
            await app.set(volume=12, source="hdmi2")
            return await app.until(
                lambda s: (
                    reported(s).get("volume") == 12
                    and reported(s).get("source") == "hdmi2"
                    and not {"volume", "source"} & status(s).get("rejected", {}).keys()
                    and not desired(s)
                )
            )
        finally:
            await rig.close()

    final = run(scenario())
    rejected = status(final)["rejected"]
    assert set(rejected) == {"input", "bass", "pyiot", "mute"}
    assert rejected["input"] == {"value": 3, "reason": "input is read-only"}
    assert rejected["bass"]["reason"] == "unknown property (known: input, power, source, volume)"
    assert rejected["pyiot"] == {"value": '{"x":1}', "reason": "reserved for pyiot's own status"}
    assert rejected["mute"]["value"] == "yes"
    logged = caplog.text
    assert "rejected desired volume = 99: 99 is outside 0..38" in logged
    assert "rejected desired source = 'vga': expected one of hdmi1, hdmi2, got 'vga'" in logged
    assert "rejected desired bass = 4: unknown property" in logged


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("loud", "expected a number, got 'loud'"),
        (12.5, "expected a whole number, got 12.5"),
        (True, "expected a number, got True"),
        (-1, "-1 is outside 0..38"),
        ({"level": 3}, "expected a number"),
    ],
)
def test_values_that_do_not_fit_are_rejected(stack: LocalStack, thing_name, value, reason):
    name = thing_name()

    async def scenario() -> dict:
        rig = Rig(stack, amp_program(name))
        try:
            await rig.start()
            await rig.apps[name].set(volume=value)
            return await rig.apps[name].until(
                lambda s: "volume" in status(s).get("rejected", {}) and not desired(s)
            )
        finally:
            await rig.close()

    rejection = status(run(scenario()))["rejected"]["volume"]
    assert rejection["reason"].startswith(reason)
    shown = value if not isinstance(value, dict) else json.dumps(value, separators=(",", ":"))
    assert rejection["value"] == shown


def test_desired_set_while_pyiot_was_away_is_applied_on_start(any_order_stack, thing_name):
    """Stale `reported` says the wish is met; the device says otherwise: the device wins.
    Nothing in desired is wiped without being applied."""
    name = thing_name()

    async def scenario() -> tuple[dict, dict]:
        rig = Rig(any_order_stack, amp_program(name))
        try:
            await rig.start_app()
            app = rig.apps[name]
            # A previous run reported power on; since then the amp was switched off by hand.
            await app.connection.update(name, reported={"power": True, "volume": 5})
            await app.set(power=True, volume=20)
            before = await app.document()
            assert before["delta"] == {"volume": 20}  # no delta for power: reported is stale
            await rig.start_gateway(await rig.serve_devices())
            # Wait for every key asserted below (input too: it comes with the first poll,
            # which may trail the desired values when the delta comes first).
            state = await app.until(
                lambda s: (
                    reported(s).get("volume") == 20
                    and reported(s).get("power") is True
                    and reported(s).get("input") == 1
                    and not desired(s)
                )
            )
            return state, dict(rig.sims[f"{name}.amp1"].sims["amp1"].values)
        finally:
            await rig.close()

    state, device = run(scenario())
    assert device["power"] is True and device["volume"] == 20
    assert reported(state)["input"] == 1


def test_desired_waits_for_an_absent_device_and_is_applied_when_it_comes(stack, thing_name):
    name = thing_name()

    async def scenario() -> tuple[dict, dict, dict]:
        rig = Rig(stack, amp_program(name))
        try:
            endpoints = await rig.serve_devices()
            sim = rig.sims[f"{name}.amp1"]
            port = int(endpoints[f"{name}.amp1"].rsplit(":", 1)[1])
            await sim.close()  # unplugged before pyiot starts
            await rig.start_app()
            app = rig.apps[name]
            await app.set(volume=7)
            await rig.start_gateway(endpoints)
            offline = await app.until(
                lambda s: (
                    status(s).get("components", {}).get("amp1", {}).get("online") is False
                    # (the first report, before pyiot tried the port, has no error yet)
                    and status(s)["components"]["amp1"].get("error")
                )
            )
            await asyncio.sleep(0.5)
            waiting = await app.document()
            await sim.serve_tcp(port=port)  # plugged back in
            applied = await app.until(lambda s: reported(s).get("volume") == 7 and not desired(s))
            return offline, waiting, applied
        finally:
            await rig.close()

    offline, waiting, applied = run(scenario())
    assert "cannot open device" in status(offline)["components"]["amp1"]["error"]
    assert waiting["desired"] == {"volume": 7}  # kept, not wiped, while the device is away
    # `"error": null` deletes the key: no error is no key.
    assert status(applied)["components"]["amp1"] == {"online": True}


def test_reports_carry_only_changes_and_bursts_go_together(stack, thing_name, make_request_probe):
    """Watch what pyiot itself publishes on `update`: only changed keys, one update per burst."""
    name = thing_name()
    requests = make_request_probe(stack, name)

    async def scenario() -> list[dict]:
        rig = Rig(stack, amp_program(name))
        try:
            await rig.start()
            app = rig.apps[name]
            await app.until(lambda s: reported(s).get("input") == 1)
            await eventually(lambda: probe_saw(requests, *FIRST_REPORT_KEYS), what="first reports")
            requests.clear()
            sim = rig.sims[f"{name}.amp1"]
            sim.change("amp1", "volume", 30)  # someone turns the knob...
            await app.until(lambda s: reported(s).get("volume") == 30)
            await eventually(lambda: probe_saw(requests, "volume"), what="the volume report seen")
            sim.change("amp1", "power", True)  # ...then two changes at once
            sim.change("amp1", "input", 4)
            await app.until(lambda s: reported(s).get("input") == 4)
            await asyncio.sleep(4 * REPORT_WINDOW)
            return requests.bodies()
        finally:
            await rig.close()

    bodies = run(scenario())
    assert bodies == [
        {"state": {"reported": {"volume": 30}}},
        {"state": {"reported": {"power": True, "input": 4}}},
    ]


def test_a_restarted_pyiot_reports_only_what_the_shadow_lacks(
    stack, thing_name, make_request_probe
):
    name = thing_name()
    requests = make_request_probe(stack, name)

    async def scenario() -> list[dict]:
        rig = Rig(stack, amp_program(name))
        try:
            endpoints = await rig.serve_devices()
            await rig.start_app()
            app = rig.apps[name]
            await rig.start_gateway(endpoints)
            # Stored by the shadow service (not only sent): the next run reads them back.
            await app.until(lambda s: all(key in reported(s) for key in FIRST_REPORT_KEYS))
            await eventually(lambda: probe_saw(requests, *FIRST_REPORT_KEYS), what="first reports")
            await rig.stop_gateway()
            rig.sims[f"{name}.amp1"].change("amp1", "volume", 9)  # while pyiot was away
            requests.clear()
            await rig.start_gateway(endpoints)
            await app.until(lambda s: reported(s).get("volume") == 9)
            await eventually(lambda: probe_saw(requests, "volume"), what="the volume report seen")
            return requests.bodies()
        finally:
            await rig.close()

    bodies = run(scenario())
    sent = {}
    for body in bodies:
        sent.update(body["state"]["reported"])
    # The unchanged power and input are not sent again; the status entry is (the component
    # goes offline -> online across the restart).
    assert "volume" in sent and "power" not in sent and "input" not in sent
