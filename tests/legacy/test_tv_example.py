"""The original pyIOT's TV example runs unchanged on pyiot: an Anthem AVM 20 preamp and an Epson
projector (pyiot's simulators of devices/anthem_avm20.iot and devices/epson_escvp21.iot, on
pseudo-terminals opened with pyserial as the example opened its USB adapters), one Thing whose
`onChange` keeps them consistent, and an application that only talks to the Device Shadow."""

from __future__ import annotations

import time

import pytest
import serial

from tests.e2e.conftest import desired, reported
from tests.legacy.conftest import started
from tests.legacy.tv_example import TVThing, preampComponent, projectorComponent

pytestmark = pytest.mark.timeout(60)


def fast_clock() -> float:
    """The projector's time, a million times faster: its 40 s warm-up and 20 s cool-down are
    over before the next command reaches it (the real one answers `PWR ON` only once lit)."""
    return time.monotonic() * 1e6


def test_tv_thing_on_change_drives_the_projector(stack, devices, app) -> None:
    preamp_sim, preamp_port = devices.serve("anthem_avm20.iot")
    projector_sim, projector_port = devices.serve("epson_escvp21.iot", clock=fast_clock)
    devices.preset(projector_sim, "projector", "source", "video")  # as it was left last time
    shadow = app("TV")

    # The example's main block, with pseudo-terminals for its USB adapters and the local
    # broker for its AWS endpoint.
    preampStream = serial.Serial(preamp_port, 9600, timeout=1)  # noqa: N806
    projectorStream = serial.Serial(projector_port, 9600, timeout=60)  # noqa: N806
    preamp = preampComponent(name="AVM20", stream=preampStream)
    projector = projectorComponent(
        name="EPSON1080UB", stream=projectorStream, eol=":", synchronous=True
    )
    TV = TVThing(thingName="TV", components=[preamp, projector], broker=stack.url)  # noqa: N806

    def exit_components() -> None:
        preamp.exit()
        projector.exit()

    with started(TV, stop=exit_components):
        # The preamp is found off: onChange turns it back on, on the Alexa's AUX input.
        state = shadow.wait_until(
            lambda d: reported(d).get("powerState") == "ON" and reported(d).get("input") == "AUX"
        )
        assert reported(state)["muted"] is False
        assert reported(state)["projPowerState"] == "OFF"
        devices.wait_value(preamp_sim, "preamp", "power", True)
        devices.wait_value(preamp_sim, "preamp", "input", "aux")
        assert reported(state)["pyiot"]["components"] == {
            "AVM20": {"online": True},
            "EPSON1080UB": {"online": True},
        }

        # Watching TV: the preamp goes to its TV input, onChange lights the projector on HDMI1.
        shadow.set_desired(input="TV")
        state = shadow.wait_until(
            lambda d: reported(d).get("projInput") == "HDMI1" and not desired(d), timeout=20
        )
        assert reported(state)["input"] == "TV"
        assert reported(state)["projPowerState"] == "ON"
        devices.wait_value(projector_sim, "projector", "power", "on")
        devices.wait_value(projector_sim, "projector", "source", "hdmi1")

        # A Blu-ray on the DVD input is HDMI2 on the projector.
        shadow.set_desired(input="DVD")
        shadow.wait_until(lambda d: reported(d).get("projInput") == "HDMI2")
        devices.wait_value(projector_sim, "projector", "source", "hdmi2")

        # Volume 0..100 becomes the preamp's dB (the example's curve), and back.
        shadow.set_desired(volume=50)
        db = preampComponent._volumeToDb(50)
        shadow.wait_until(
            lambda d: (
                reported(d).get("volume") == preampComponent._dbToVolume(db) and not desired(d)
            )
        )
        devices.wait_value(preamp_sim, "preamp", "volume", db)

        # Back to a CD: the projector is switched off.
        shadow.set_desired(input="CD")
        shadow.wait_until(lambda d: reported(d).get("projPowerState") == "OFF")
        devices.wait_value(projector_sim, "projector", "power", "standby")
        assert reported(shadow.latest)["input"] == "CD"
