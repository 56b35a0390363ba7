"""The GPIO relay on a Device Shadow: in-process through the Gateway (so the mock button can be
pressed), and as a user runs it, `pyiot run examples/gpio/gpio_relay.iot --allow-python`."""

from __future__ import annotations

import asyncio

import pytest
from gpiozero.pins.mock import MockFactory

from pyiot.compiler import Program
from pyiot.local import LocalStack
from pyiot.runtime.gateway import Gateway
from pyiot.runtime.shadow_client import BrokerAddress, ShadowConnection
from tests.e2e.conftest import desired as doc_desired
from tests.e2e.conftest import reported as doc_reported
from tests.e2e.conftest import run_pyiot
from tests.gpio.conftest import BUTTON_PIN, GPIO_RELAY, RELAY_PIN
from tests.shadow.conftest import App, desired, reported, status

pytestmark = pytest.mark.timeout(60)


def test_desired_switches_the_pin_and_a_press_reaches_the_shadow(
    stack: LocalStack, pins: MockFactory, gpio_program: Program
) -> None:
    relay, button = pins.pin(RELAY_PIN), pins.pin(BUTTON_PIN)

    async def scenario() -> None:
        broker = BrokerAddress(stack.host, stack.port)
        app_connection = ShadowConnection(broker)
        await app_connection.connect()
        app = App(app_connection, "gpioRelay")
        await app.watch()
        connection = ShadowConnection(broker)
        await connection.connect()
        gateway = Gateway(gpio_program, connection, allow_python=True)
        await gateway.start()
        try:
            await app.until(lambda s: reported(s).get("relayState") is False)
            await app.set(relayState=True)
            await app.until(lambda s: reported(s).get("relayState") is True and not desired(s))
            assert relay.state is True

            # Someone presses the button by the relay: gpiozero's thread sees the edge.
            await asyncio.to_thread(button.drive_low)
            state = await app.until(lambda s: reported(s).get("relayState") is False)
            assert relay.state is False
            assert status(state)["components"]["relay1"] == {"online": True}
        finally:
            await gateway.stop()
            await connection.close()
            await app_connection.close()

    asyncio.run(scenario())


def test_run_refuses_without_allow_python() -> None:
    result = run_pyiot("run", str(GPIO_RELAY))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "pyiot: error: custom transport gpio_relay:GpioRelayLink runs Python; "
        "run with --allow-python if you trust this file"
    ]
    assert result.stdout == ""  # refused before a broker or anything else started


@pytest.mark.parametrize("simulate", [False, True], ids=["plain", "--simulate"])
def test_run_with_allow_python_on_mock_pins(cli, shadow_app, stack: LocalStack, simulate) -> None:
    app = shadow_app(stack.url, "gpioRelay")
    args = ["run", str(GPIO_RELAY), "--allow-python", "--broker", stack.url]
    run = cli(*args, *(["--simulate"] if simulate else []), env={"GPIOZERO_PIN_FACTORY": "mock"})
    if simulate:  # the custom link is its own stand-in: no simulator replaces it
        run.wait_for(r"^simulator: relay1 not simulated: on custom transport gpio_relay:")
    run.wait_for(r"^thing gpioRelay: relay1 on gpio_relay:GpioRelayLink$")
    run.wait_for(r"^ready")
    app.set_desired(relayState=True)
    document = app.wait_until(
        lambda d: doc_reported(d).get("relayState") is True and "relayState" not in doc_desired(d)
    )
    assert doc_reported(document)["pyiot"]["components"]["relay1"]["online"] is True
    assert run.stop() == 0
