"""The real ComponentEngine over the GPIO relay link, built as `pyiot run` builds it: from
examples/gpio/gpio_relay.iot's `on custom "gpio_relay:GpioRelayLink"` and its transport
settings, with Python allowed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from gpiozero import OutputDevice
from gpiozero.pins.mock import MockFactory

from pyiot.compiler import Program
from pyiot.runtime.component import ComponentEngine, EngineConfig
from pyiot.runtime.transport import open_link
from tests.gpio.conftest import BUTTON_PIN, EXAMPLE, RELAY_PIN
from tests.waiting import PATIENCE, eventually

pytestmark = pytest.mark.timeout(30)


def gpio_link(program: Program, **changes: Any) -> Any:
    """The link Gateway would open for relay1 (settings as the file gives them, or changed)."""
    component = program.model.things["gpioRelay"].components["relay1"]
    settings = {**program.model.devices[component.device].transport.settings, **changes}
    return open_link("custom", component.endpoint, settings, allow_python=True, search_dir=EXAMPLE)


def run_engine(
    program: Program,
    body: Callable[[ComponentEngine, list[tuple[str, Any]]], Awaitable[None]],
    **settings: Any,
) -> None:
    """Start relay1's engine over the GPIO link; `body` gets it and the value changes heard."""

    async def scenario() -> None:
        engine = ComponentEngine(
            EngineConfig(
                "relay1", program.model.devices["GpioRelay"], program.machines["GpioRelay"]
            ),
            gpio_link(program, **settings),
        )
        heard: list[tuple[str, Any]] = []
        engine.value_listeners.append(lambda component, prop, value: heard.append((prop, value)))
        await engine.start()
        try:
            await body(engine, heard)
        finally:
            await asyncio.wait_for(engine.stop(), timeout=PATIENCE)

    asyncio.run(scenario())


def test_settings_reach_the_link(gpio_program: Program) -> None:
    link = gpio_link(gpio_program)
    assert type(link).__name__ == "GpioRelayLink"
    assert (link.pin, link.button_pin, link.bounce) == (17, 27, 0.05)
    # A typo in the file's settings is one sentence (pyiot run prints it as its error line).
    with pytest.raises(ValueError, match=r"^gpio relay: unknown transport setting buton \(known"):
        gpio_link(gpio_program, buton=27)


def test_set_switches_the_relay_pin(gpio_program: Program, pins: MockFactory) -> None:
    relay = pins.pin(RELAY_PIN)

    async def body(engine: ComponentEngine, heard: list) -> None:
        await eventually(lambda: engine.values.get("relayState") is False)  # first poll
        assert engine.status.online and relay.state is False
        assert await engine.set("relayState", True) is True
        assert relay.state is True
        assert await engine.set("relayState", False) is False
        assert relay.state is False
        assert heard == [("relayState", False), ("relayState", True), ("relayState", False)]

    run_engine(gpio_program, body)


def test_active_low_module_inverts_the_pin(gpio_program: Program, pins: MockFactory) -> None:
    relay = pins.pin(RELAY_PIN)

    async def body(engine: ComponentEngine, heard: list) -> None:
        await eventually(lambda: engine.values.get("relayState") is False)
        assert relay.state is True  # off is a high input on an active-low module
        await engine.set("relayState", True)
        assert relay.state is False

    run_engine(gpio_program, body, active_high=False)


def test_button_press_toggles_the_relay_and_is_reported(
    gpio_program: Program, pins: MockFactory
) -> None:
    relay, button = pins.pin(RELAY_PIN), pins.pin(BUTTON_PIN)

    async def press() -> None:
        # gpiozero calls back on the thread that sees the edge: not the loop's.
        await asyncio.to_thread(button.drive_low)
        await asyncio.sleep(0.1)  # past the 50 ms debounce
        await asyncio.to_thread(button.drive_high)
        await asyncio.sleep(0.1)

    async def body(engine: ComponentEngine, heard: list) -> None:
        await eventually(lambda: engine.values.get("relayState") is False)
        await press()
        await eventually(lambda: engine.values["relayState"] is True)
        assert relay.state is True
        await press()
        await eventually(lambda: engine.values["relayState"] is False)
        assert relay.state is False
        assert heard == [("relayState", False), ("relayState", True), ("relayState", False)]
        # Unsolicited lines the engine recognised, not noise.
        assert engine.status.unrecognised_lines == 0

    run_engine(gpio_program, body)


def test_pin_in_use_keeps_the_component_offline_until_released(
    gpio_program: Program, pins: MockFactory
) -> None:
    other = OutputDevice(RELAY_PIN)  # another program has the relay's pin

    async def body(engine: ComponentEngine, heard: list) -> None:
        await eventually(lambda: engine.status.last_error is not None)
        assert not engine.status.online
        assert "cannot open device" in engine.status.last_error
        assert "GPIO17" in engine.status.last_error
        other.close()
        await eventually(lambda: engine.status.online)  # retried, now free
        await eventually(lambda: engine.values.get("relayState") is False)

    run_engine(gpio_program, body)


def test_unknown_command_is_answered_err(gpio_program: Program, pins: MockFactory) -> None:
    async def scenario() -> list[bytes]:
        link = gpio_link(gpio_program)
        await link.open()
        try:
            await link.write(b"HELLO\nRELAY")  # a partial line waits for its end
            first = await asyncio.wait_for(link.read(), PATIENCE)
            await link.write(b"ON\nRELAY?\n")
            return [first, await link.read(), await link.read()]
        finally:
            await link.close()

    assert asyncio.run(scenario()) == [b"ERR\n", b"RELAYON\n", b"RELAYON\n"]
    assert pins.pin(RELAY_PIN).function == "input"  # closed: released, no longer driven
