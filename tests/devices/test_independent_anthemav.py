"""devices/anthem_mrx.iot against anthemav, the Anthem receiver library Home Assistant uses.

anthemav (`anthemav.Connection.create(host, port)`) asks `IDM?` on connecting; the model it
hears decides the series (`MRX 720`: x20), after which it turns reports on (`ECH1`), asks each
zone's `Z1POW?`, and sets with `Z1POW1`, `Z1VOL-40`, `Z1MUT1`, `Z1INP3`, each ended by `;`.
The simulated receiver must answer all of it as the file says the receiver does.
"""

from __future__ import annotations

import asyncio

import pytest

from pyiot.runtime.protocol import DeviceProtocol
from pyiot.sim import simulator_for
from tests.devices.conftest import device_file
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


# anthemav leaves coroutines of its own unawaited when its connection closes (refresh_input).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_anthemav_drives_the_simulated_receiver():
    anthemav = pytest.importorskip("anthemav")

    async def scenario() -> None:
        port = simulator_for(device_file("anthem_mrx"))
        url = await port.serve_tcp()
        host, number = url.removeprefix("socket://").rsplit(":", 1)
        receiver = port.sims["receiver"]
        conn = await anthemav.Connection.create(host=host, port=int(number))
        avr = conn.protocol
        try:
            await eventually(lambda: avr.model == "MRX 720", what="anthemav reads the model")
            zone = avr.zones[1]
            await eventually(lambda: "POW" in zone.values, what="anthemav reads zone 1's power")
            assert zone.power is False
            zone.power = True
            await eventually(lambda: receiver.values["power"] is True, what="power on")
            await eventually(lambda: zone.power is True, what="anthemav hears the power")
            zone.attenuation = -40
            await eventually(lambda: receiver.values["volume"] == -40, what="volume set")
            zone.mute = True
            await eventually(lambda: receiver.values["mute"] is True, what="mute set")
            await eventually(lambda: zone.mute is True, what="anthemav hears the mute")
            zone.input_number = 3
            await eventually(lambda: receiver.values["input"] == 3, what="input set")
            assert receiver.values["txStatus"] is True  # anthemav's ECH1 on an x20 model
        finally:
            conn.close()
            await port.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("line", "values"),
    [
        ("IDMMRX 1120", {"model": "MRX 1120"}),
        ("IDMMRX 520", {"model": "MRX 520"}),
        ("Z1VOL-42", {"volume": -42}),
        ("Z1POW1", {"power": True}),
        ("Z1POW0", {"power": False}),
    ],
)
def test_the_driver_reads_the_messages_of_anthemavs_own_tests(line: str, values: dict) -> None:
    """anthemav's tests (tests/test_protocol.py) feed its parser these receiver messages; the
    file's driver reads the same lines, unasked, as the receiver's reports."""
    device = device_file("anthem_mrx").devices["AnthemMRX"]
    assert DeviceProtocol(device, {}).unsolicited(line) == values
