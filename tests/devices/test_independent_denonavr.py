"""devices/denon_avr.iot against denonavr, the Denon/Marantz library Home Assistant uses.

denonavr's `DenonAVR` reads the receiver's HTTP/XML interface (`/goform/...`) before anything
else, which no `.iot` file describes: that is why it was "not usable" before. Its telnet side,
`denonavr.api.DenonAVRTelnetApi`, is the part that speaks the protocol this file is about: on
connecting it asks `ZM?`, `SI?`, `MV?`, `MU?` and some sixty more (each unanswered one costs
it 0.2 s), calls back each `PWON`/`MV505`/`SISAT/CBL` it hears, and waits for each command's
echo as its confirmation. It always connects to port 23, so the simulated receiver listens on
port 23 of a loopback address of its own (127.0.0.23); the test is skipped when that is taken.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.sim import simulator_for
from tests.devices.conftest import device_file
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)

HOST = "127.0.0.23"  # any 127/8 address is loopback on Linux; port 23 is what denonavr dials


def test_denonavr_telnet_drives_the_simulated_receiver():
    pytest.importorskip("denonavr")
    from denonavr.api import DenonAVRTelnetApi
    from denonavr.const import ALL_TELNET_EVENTS

    async def scenario() -> None:
        port = simulator_for(device_file("denon_avr"))
        try:
            await port.serve_tcp(HOST, 23)
        except OSError as err:
            pytest.skip(f"cannot listen on {HOST}:23 ({err})")
        receiver = port.sims["receiver"]
        heard: list[tuple[str, str]] = []
        api = DenonAVRTelnetApi(host=HOST)
        api.register_callback(ALL_TELNET_EVENTS, lambda zone, event, value: heard.append((event, value)))
        try:
            await api.async_connect()
            # Its first questions are answered as the receiver would.
            await eventually(
                lambda: {"ZM", "SI", "MV", "MU"} <= {e for e, _ in heard}, what="ZM/SI/MV/MU"
            )
            assert ("ZM", "OFF") in heard and ("MU", "OFF") in heard
            await api.async_send_commands("ZMON", "MV505", "MUON", "SICD")
            assert receiver.values["mainZone"] is True
            assert receiver.values["volume"] == 50.5
            assert receiver.values["mute"] is True
            assert receiver.values["input"] == "cd"
            assert ("MV", "505") in heard  # the half decibel as the receiver writes it
            # A change at the receiver (current models' SAT/CBL) reaches denonavr unasked.
            port.change("receiver", "input", "satcbl")
            await eventually(lambda: ("SI", "SAT/CBL") in heard, what="SISAT/CBL heard")
        finally:
            await api.async_disconnect()
            await port.close()

    asyncio.run(scenario())
