"""Rules across components (the original pyIOT's TVThing.onChange), over real TCP simulators."""

from __future__ import annotations

import asyncio

import pytest

from pyiot.compiler import Program
from pyiot.lang import load
from pyiot.runtime.component import ComponentEngine, EngineConfig
from pyiot.runtime.rules import RuleRunner
from pyiot.runtime.transport import open_link
from pyiot.sim import simulator_for
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(30)

HOUSE = r"""
device Preamp {
    framing line "\n"
    timeout 300ms
    property input: enum { tv = "6", dvd = "5", cd = "0" } {
        query "P1S?" reply /^P1S(?P<value>\d)$/ set "P1S{value}"
    }
}
device Projector {
    framing line "\r"
    timeout 300ms
    property power: enum { off = "00", on = "01" } {
        query "PWR?" reply /^PWR=(?P<value>\d\d)$/ set "PWR {value}" with { on = "ON", off = "OFF" }
    }
    property source: enum { hdmi1 = "30", hdmi2 = "A0" } {
        query "SOURCE?" reply /^SOURCE=(?P<value>\w\w)$/ set "SOURCE {value}"
    }
}
thing tvThing {
    component preamp: Preamp on serial "/dev/ttyUSB0"
    component projector: Projector on serial "/dev/ttyUSB1"
    rule {
        when preamp.input becomes tv  then projector.power = on, projector.source = hdmi1
        when preamp.input becomes dvd then projector.power = on, projector.source = hdmi2
    }
}
"""


def test_a_change_at_the_preamp_switches_the_projector() -> None:
    async def scenario() -> None:
        program = Program.from_model(load(HOUSE, "house.iot"))
        thing = program.model.things["tvThing"]
        sims, engines = {}, {}
        for name in ("preamp", "projector"):
            sims[name] = simulator_for(program.model, name)
            url = await sims[name].serve_tcp()
            comp = thing.components[name]
            engines[name] = ComponentEngine(
                EngineConfig(
                    name, program.model.devices[comp.device], program.machines[comp.device]
                ),
                open_link("serial", url),
            )
        rules = RuleRunner(thing, engines)
        for engine in engines.values():
            await engine.start()
        try:
            # The first reading (tv, the preamp's initial input) is no change: nothing fires.
            await eventually(lambda: "input" in engines["preamp"].values)
            await eventually(lambda: "source" in engines["projector"].values)
            await asyncio.sleep(0.2)
            assert rules.fired == 0 and sims["projector"].sims["projector"].values["power"] == "off"
            # Someone picks DVD on the preamp's front panel: the projector follows.
            sims["preamp"].change("preamp", "input", "dvd")
            await eventually(lambda: sims["projector"].sims["projector"].values["source"] == "hdmi2")
            assert sims["projector"].sims["projector"].values["power"] == "on"
            assert rules.fired == 1
            # Back to TV: power is already on, so only the source command goes out.
            sent = []
            sims["projector"].sims["projector"].on_change = lambda c, p, v: sent.append((p, v))
            await asyncio.sleep(1.0)  # past the loop guard's cooldown
            sims["preamp"].change("preamp", "input", "tv")
            await eventually(lambda: sims["projector"].sims["projector"].values["source"] == "hdmi1")
            assert sent == [("source", "hdmi1")]
        finally:
            await rules.stop()
            for engine in engines.values():
                await engine.stop()
            for sim in sims.values():
                await sim.close()

    asyncio.run(scenario())


def test_rules_that_feed_each_other_do_not_loop() -> None:
    looping = HOUSE.replace(
        "when preamp.input becomes dvd then projector.power = on, projector.source = hdmi2",
        "when projector.source becomes hdmi1 then preamp.input = dvd\n"
        "        when preamp.input becomes dvd then projector.source = hdmi2\n"
        "        when projector.source becomes hdmi2 then preamp.input = tv",
    )

    async def scenario() -> int:
        program = Program.from_model(load(looping, "loop.iot"))
        thing = program.model.things["tvThing"]
        sims, engines = {}, {}
        for name in ("preamp", "projector"):
            sims[name] = simulator_for(program.model, name)
            comp = thing.components[name]
            engines[name] = ComponentEngine(
                EngineConfig(
                    name, program.model.devices[comp.device], program.machines[comp.device]
                ),
                open_link("serial", await sims[name].serve_tcp()),
            )
        rules = RuleRunner(thing, engines)
        for engine in engines.values():
            await engine.start()
        try:
            await eventually(lambda: "source" in engines["projector"].values)
            sims["preamp"].change("preamp", "input", "dvd")
            await asyncio.sleep(1.5)
            return rules.fired
        finally:
            await rules.stop()
            for engine in engines.values():
                await engine.stop()
            for sim in sims.values():
                await sim.close()

    # tv -> hdmi1 -> dvd -> hdmi2 -> tv ... is cut by the cooldown: a handful, not hundreds.
    assert asyncio.run(scenario()) <= 5
