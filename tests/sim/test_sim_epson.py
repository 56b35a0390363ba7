"""An Epson projector simulated from its file: enum codes, a set's own words, prompt, modes.

The strings are ESC/VP21's: `PWR?` -> `PWR=01\\r:`, `PWR ON` -> `:`, and while the lamp warms up
`SOURCE 30` -> `ERR\\r:`. Time is a hand-moved clock, so a 40 s warm-up takes no time.
"""

from __future__ import annotations

import pytest

from pyiot.sim import PortSimulator, simulator_for


@pytest.fixture
def port(epson_model, clock) -> PortSimulator:
    return simulator_for(epson_model, "projector", clock=clock)


@pytest.fixture
def changes(port) -> list[tuple[str, str, object]]:
    """What `pyiot simulate` logs as `simulator: projector.power = warming`."""
    seen: list[tuple[str, str, object]] = []
    port.sims["projector"].on_change = lambda *change: seen.append(change)
    return seen


def test_replies_end_with_the_prompt_and_no_terminator(port):
    assert port.respond("PWR?") == b"PWR=00\r:"
    assert port.respond("SOURCE?") == b"SOURCE=30\r:"
    # A bare "\r" is how a client sees the projector listening: the prompt alone.
    assert port.respond("") == b":"
    assert port.unrecognised_lines == 0


def test_unknown_command_is_err_then_prompt(port):
    assert port.respond("LAMP?") == b"ERR\r:"
    assert port.respond("PWR on") == b"ERR\r:"  # ESC/VP21 words are upper case
    assert port.unrecognised_lines == 2
    assert port.sims["projector"].values["power"] == "off"


def test_power_on_warms_up_then_is_on(port, clock, changes):
    projector = port.sims["projector"]
    assert projector.mode == "off"
    assert port.respond("PWR ON") == b":"
    assert port.respond("PWR?") == b"PWR=02\r:"
    assert projector.mode == "warming"
    clock.advance(39.9)
    assert port.respond("PWR?") == b"PWR=02\r:"
    clock.advance(0.1)
    assert port.respond("PWR?") == b"PWR=01\r:"
    assert projector.mode == "on"
    assert changes == [("projector", "power", "warming"), ("projector", "power", "on")]


def test_no_source_change_while_warming(port, clock):
    projector = port.sims["projector"]
    assert port.respond("PWR ON") == b":"
    assert port.respond("SOURCE A0") == b"ERR\r:"
    assert projector.values["source"] == "hdmi1"
    clock.advance(40)
    assert port.respond("SOURCE A0") == b":"
    assert port.respond("SOURCE?") == b"SOURCE=A0\r:"
    assert projector.values["source"] == "hdmi2"


def test_no_source_change_while_off_or_cooling(port, clock):
    assert port.respond("SOURCE 41") == b"ERR\r:"
    port.respond("PWR ON")
    clock.advance(40)
    assert port.respond("PWR OFF") == b":"
    assert port.respond("PWR?") == b"PWR=03\r:"
    assert port.respond("SOURCE 41") == b"ERR\r:"
    assert port.sims["projector"].values["source"] == "hdmi1"
    # A refused command is a known command: it does not count as noise on the line.
    assert port.unrecognised_lines == 0


def test_cooling_ends_in_standby(port, clock):
    projector = port.sims["projector"]
    port.respond("PWR ON")
    clock.advance(100)
    port.respond("PWR OFF")
    clock.advance(19)
    assert port.respond("PWR?") == b"PWR=03\r:"
    clock.advance(1)
    assert port.respond("PWR?") == b"PWR=04\r:"
    assert projector.mode == "standby"


def test_set_takes_the_enum_code_as_well_as_its_own_word(port, clock):
    assert port.respond("PWR 01") == b":"  # the code means `on`, as `PWR ON` does
    assert port.respond("PWR?") == b"PWR=02\r:"
    clock.advance(40)
    assert port.respond("SOURCE 30") == b":"
    assert port.respond("SOURCE 99") == b"ERR\r:"  # no such source
    assert port.sims["projector"].values["source"] == "hdmi1"


def test_timers_fall_due_on_tick_without_a_line(port, clock, changes):
    port.respond("PWR ON")
    projector = port.sims["projector"]
    assert projector.next_timer() == pytest.approx(40)
    clock.advance(45)
    assert projector.next_timer() == 0
    projector.tick()
    assert changes[-1] == ("projector", "power", "on")
    assert projector.next_timer() is None  # `on` waits for a command, not for time


def test_power_changed_at_the_projector_moves_its_mode(port, clock):
    """A front-panel change of the mode's own property puts the device in that mode."""
    projector = port.sims["projector"]
    port.respond("PWR ON")
    assert projector.change("power", "on") == ["PWR=01"]
    assert projector.mode == "on"
    assert port.respond("SOURCE 42") == b":"
    projector.change("power", "cooling")
    assert port.respond("SOURCE 41") == b"ERR\r:"
    clock.advance(20)  # cooling's timer counts from the change
    assert port.respond("PWR?") == b"PWR=04\r:"
