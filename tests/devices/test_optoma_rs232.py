"""devices/optoma_rs232.iot: Optoma's "~XX" RS-232 commands, reads and automatic reports.

Quoted from Optoma's manuals: "~XX00 1" (7E 30 30 30 30 20 31 0D) is Power ON, answered "P +
<CR>" (pass) or "F + <CR>" (fail); "~XX124 1" reads the power state "OKn", "n : 0/1 = Off/On";
"~XX12 1" selects HDMI1, which "~XX121 1" reads back as "a = 7 HDMI1"; "INFOa" is sent
unasked ("Warming up a=1"). No independent client for this protocol is published on the
package index.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.sim import simulator_for
from tests.devices.conftest import device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)

NAME = "optoma_rs232"


@pytest.fixture
def projector():
    return simulator_for(device_file(NAME))


def test_power_on_in_the_manuals_bytes(projector):
    assert projector.respond("~00124 1") == b"OK0\r"
    # Power ON: 7E 30 30 30 30 20 31 0D, "Projector Return (Pass): P + <CR>".
    assert bytes.fromhex("7E 30 30 30 30 20 31") == b"~0000 1"
    assert projector.respond("~0000 1") == b"P\r"
    assert projector.respond("~00124 1") == b"OK1\r"
    assert projector.respond("~0000 0") == b"P\r"
    assert projector.respond("~00124 1") == b"OK0\r"


def test_a_source_is_selected_in_one_numbering_and_read_in_another(projector):
    assert projector.respond("~0012 1") == b"P\r"  # Direct Source HDMI1
    assert projector.respond("~00121 1") == b"OK7\r"  # a = 7 HDMI1
    assert projector.respond("~0012 15") == b"P\r"  # HDMI2
    assert projector.respond("~00121 1") == b"OK8\r"
    assert projector.respond("~0012 10") == b"P\r"  # Video
    assert projector.respond("~00121 1") == b"OK5\r"
    assert projector.respond("~0012 99") == b"F\r"


def test_the_projector_reports_warming_up_unasked(projector):
    assert projector.sims["projector"].change("state", "warming") == ["INFO1"]
    assert projector.sims["projector"].change("state", "cooling") == ["INFO2"]


def test_runtime_reads_every_property_and_hears_info_reports():
    async def scenario() -> None:
        async with running(device_file(NAME), "projector") as (engine, port):
            for name, prop in engine.device.properties.items():
                if prop.query:
                    await engine.read(name)
            assert engine.values["power"] is False
            assert await engine.set("power", True) is True
            assert await engine.set("input", "hdmi2") == "hdmi2"
            assert await engine.read("input") == "hdmi2"
            assert await engine.set("avMute", True) is True
            assert port.sims["projector"].values["avMute"] is True
            port.change("projector", "state", "cooling")
            await eventually(lambda: engine.values.get("state") == "cooling")

    asyncio.run(scenario())
