"""The live table of `pyiot run`, rendered as a terminal shows it, over a real ComponentEngine
talking to the relay simulator on a real TCP socket."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Awaitable, Callable

import pytest
from rich.console import Console

from pyiot.compiler import Program, compile_file
from pyiot.runtime.component import ComponentEngine, EngineConfig
from pyiot.runtime.liveview import LiveView
from pyiot.runtime.transport import open_link
from pyiot.sim import PortSimulator, simulator_for
from tests.e2e.conftest import RELAY, ROOT
from tests.waiting import PATIENCE, eventually

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def relay_program() -> Program:
    return compile_file(RELAY)


def shown(view: LiveView) -> str:
    """The table as a 120-column terminal shows it, as plain text."""
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(view.render())
    return console.export_text()


def row_of(text: str, word: str) -> list[str]:
    """The cells of the table's first text line holding `word`."""
    line = next(line for line in text.splitlines() if word in line)
    return [cell.strip() for cell in line.split("│")[1:-1]]


def with_relay(
    program: Program, body: Callable[[ComponentEngine, PortSimulator], Awaitable[None]]
) -> None:
    async def scenario() -> None:
        port = simulator_for(program.model, "relay1")
        url = await port.serve_tcp()
        engine = ComponentEngine(
            EngineConfig("relay1", program.model.devices["Relay"], program.machines["Relay"]),
            open_link("serial", url, {"baud": 9600}),
        )
        try:
            await body(engine, port)
        finally:
            await asyncio.wait_for(engine.stop(), timeout=PATIENCE)
            await port.close()

    asyncio.run(scenario())


def test_table_shows_component_state_online_and_values(relay_program) -> None:
    async def body(engine: ComponentEngine, port: PortSimulator) -> None:
        view = LiveView({"relayOne.relay1": engine}, title="pyiot run")
        before = shown(view)
        assert "0/1 components online" in before
        assert row_of(before, "relay1") == [
            "relayOne",
            "relay1",
            "offline",
            "offline",
            "relayState = ?",
            "-",
        ]
        assert "relayState = ?" in before  # nothing read yet

        await engine.start()
        await eventually(lambda: "relayState = false" in shown(view))
        text = shown(view)
        assert "pyiot run: 1/1 components online" in text
        row = row_of(text, "relay1")
        assert row == ["relayOne", "relay1", "idle", "online", "relayState = false", "-"], text
        assert row_of(text, "since")[1] == "Relay"  # the device, under the component

        await engine.set("relayState", True)
        assert row_of(shown(view), "relay1")[4] == "relayState = true"
        port.change("relay1", "relayState", False)  # the relay's own button
        await eventually(lambda: "relayState = false" in shown(view))

    with_relay(relay_program, body)


def test_lost_device_shows_offline_with_its_error(relay_program) -> None:
    async def body(engine: ComponentEngine, port: PortSimulator) -> None:
        view = LiveView({"relayOne.relay1": engine})
        await engine.start()
        # Online and read: the value asserted below must have come before the device goes.
        await eventually(lambda: engine.status.online and "relayState" in engine.values)
        await port.close()  # the device goes away
        await eventually(lambda: "0/1 components online" in shown(view))
        text = shown(view)
        row = row_of(text, "relay1")
        assert row[2:4] == ["offline", "offline"], text
        assert row[5].startswith("device link lost")
        assert "0/1 components online" in text
        # The last value read stays on show while the device is away.
        assert "relayState = false" in text

    with_relay(relay_program, body)


def test_live_display_follows_changes_and_prints_logs_above(relay_program) -> None:
    """Started as `pyiot run` starts it on a terminal: the table is redrawn when a value
    changes, a log record prints on the same console, and stop gives the handlers back."""
    terminal = io.StringIO()
    console = Console(file=terminal, force_terminal=True, width=120, record=True)
    root = logging.getLogger()
    handlers_before = list(root.handlers)

    async def body(engine: ComponentEngine, port: PortSimulator) -> None:
        view = LiveView({"relayOne.relay1": engine}, console)
        await engine.start()
        await view.start()
        try:
            await eventually(lambda: "relayState = false" in console.export_text(clear=False))
            assert root.handlers != handlers_before  # records now go to the live console
            await engine.set("relayState", True)
            await eventually(lambda: "relayState = true" in console.export_text(clear=False))
            logging.getLogger("pyiot.test").warning("relay1: a warning for the screen")
            await eventually(
                lambda: "relay1: a warning for the screen" in console.export_text(clear=False)
            )
            # Its time in ISO 8601, not the locale's 12/01/26.
            line = next(
                line
                for line in console.export_text(clear=False).splitlines()
                if "a warning for the screen" in line
            )
            assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line), line
        finally:
            await view.stop()
        assert root.handlers == handlers_before
        # The escape codes that redraw in place went to the terminal.
        assert "\x1b[" in terminal.getvalue()

    with_relay(relay_program, body)


def zone_engines(count: int) -> dict[str, ComponentEngine]:
    """`count` Monoprice zones (not started: offline, nothing read), half of them given
    values and marked online as a running amplifier's would be."""
    program = compile_file(ROOT / "devices" / "monoprice_mpr6zhmaut.iot")
    components = list(program.model.things["wholeHouse"].components.values())
    engines = {}
    for index in range(count):
        comp = components[index % len(components)]
        name = comp.name if index < len(components) else f"{comp.name}{index}"
        engine = ComponentEngine(
            EngineConfig(
                name,
                program.model.devices[comp.device],
                program.machines[comp.device],
                args=comp.args,
            ),
            open_link("serial", "/dev/null"),
        )
        if index % 2:
            engine.values.update({"power": True, "volume": 12})
            engine.status.online = True
        engines[f"wholeHouse.{name}"] = engine
    return engines


def terminal_text(view: LiveView, console: Console) -> list[str]:
    console.print(view.render())
    return console.export_text().splitlines()


def test_six_zones_fit_an_80_by_24_terminal() -> None:
    """Ten properties each would make 60 lines: each zone gets one line instead."""
    console = Console(width=80, height=24, file=io.StringIO(), record=True)
    view = LiveView(zone_engines(6), console, title="pyiot run")
    lines = terminal_text(view, console)
    assert len(lines) <= 24 - 2  # room for log lines above
    assert max(len(line) for line in lines) <= 80
    assert "3/6 components online (thing wholeHouse)" in lines[0]
    for zone in ("kitchen", "dining", "living", "patio", "master", "office"):
        cells = row_of("\n".join(lines), f"│ {zone} ")
        assert cells[0] == zone and cells[2] in ("online", "offline"), cells
    assert row_of("\n".join(lines), "│ dining ")[3].startswith("power=true mute=?")


def test_one_component_keeps_the_full_rows(relay_program) -> None:
    """When the full table fits, nothing is cut: one line per property."""
    engine = ComponentEngine(
        EngineConfig(
            "relay1", relay_program.model.devices["Relay"], relay_program.machines["Relay"]
        ),
        open_link("serial", "/dev/null"),
    )
    console = Console(width=80, height=24, file=io.StringIO(), record=True)
    text = "\n".join(terminal_text(LiveView({"relayOne.relay1": engine}, console), console))
    assert row_of(text, "│ relay1 ")[:3] == ["relayOne", "relay1", "offline"]
    assert row_of(text, "since")[1] == "Relay"  # the device, on a line of its own


def test_more_components_than_lines_end_with_a_summary() -> None:
    console = Console(width=80, height=24, file=io.StringIO(), record=True)
    view = LiveView(zone_engines(30), console, title="pyiot run")
    lines = terminal_text(view, console)
    assert len(lines) <= 24 - 2
    text = "\n".join(lines)
    more = re.search(r"│ \+(\d+) more +│ +│ (\d+) online +│ (\d+) offline", text)
    assert more, text
    rows = [line for line in lines if line.startswith("│ ") and "more" not in line]
    assert len(rows) + int(more.group(1)) == 30
    # The ones that need attention come first: every offline zone is on show.
    assert all("offline" in row for row in rows)
    assert int(more.group(3)) == 0 and int(more.group(2)) == 15
