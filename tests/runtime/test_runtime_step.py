"""`float 16..30 step 0.5` end to end: a desired 21.3 never reaches the device.

Real local stack (mosquitto + pyiot's shadow service), the Gateway with its awsiotsdk client, a
simulated thermostat on TCP and an application that sets desired values. The off-step wish is
rejected visibly in `reported.pyiot.rejected` with the two nearest allowed values; a value on a
step goes through and clears the rejection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyiot.compiler import Program
from pyiot.lang import load
from pyiot.local import LocalStack
from tests.shadow.conftest import Rig, desired, reported, status
from tests.waiting import PATIENCE

pytestmark = pytest.mark.timeout(120)

THERMOSTAT = r"""
device Thermostat {
    framing line "\r"
    timeout 300ms
    retries 1
    error /^ERR$/
    property setpoint: float 16..30 step 0.5 {
        query "SP?"
        reply /^SP (?P<value>\d+(\.\d+)?)$/
        set "SP {value}"
    }
}

thing hall {
    component thermostat: Thermostat on serial "/dev/null"
}
"""


@pytest.fixture
def stack(mosquitto_path: str, tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(port=None, data_dir=tmp_path / "stack") as running:
        yield running


def test_off_step_desired_value_is_rejected_in_the_shadow_and_never_sent(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pyiot.runtime.thing")
    program = Program.from_model(load(THERMOSTAT, "hall.iot"))

    async def scenario() -> tuple[dict, list[float]]:
        rig = Rig(stack, program)
        try:
            await rig.start()
            app = rig.apps["hall"]
            sim = rig.sims["hall.thermostat"].sims["thermostat"]
            seen: list[float] = []
            sim.on_change = lambda _name, _prop, value: seen.append(value)
            await app.until(lambda s: reported(s).get("setpoint") == 16, PATIENCE)

            await app.set(setpoint=21.3)
            rejected_state = await app.until(
                lambda s: "setpoint" in status(s).get("rejected", {}) and not desired(s),
                PATIENCE,
            )
            assert reported(rejected_state)["setpoint"] == 16  # unchanged, not rounded

            # A value on a step goes through and clears the rejection.
            await app.set(setpoint=21.5)
            await app.until(
                lambda s: (
                    reported(s).get("setpoint") == 21.5
                    and "setpoint" not in status(s).get("rejected", {})
                    and not desired(s)
                ),
                PATIENCE,
            )
            return rejected_state, seen
        finally:
            await rig.close()

    rejected_state, seen = asyncio.run(scenario())
    rejection = status(rejected_state)["rejected"]["setpoint"]
    assert rejection["value"] == 21.3
    assert "between steps of 0.5 from 16; nearest allowed: 21 or 21.5" in rejection["reason"]
    # The device never saw 21.3: the only value it took is 21.5.
    assert seen == [21.5]
    assert "rejected desired setpoint = 21.3" in caplog.text
