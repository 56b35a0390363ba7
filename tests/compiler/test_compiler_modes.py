"""Device modes compile to a second machine, drawn beside the protocol machine."""

from __future__ import annotations

from pathlib import Path

from pyiot.compiler import Program, load_program
from pyiot.compiler.codegen import driver_source
from pyiot.compiler.graph import render
from pyiot.lang import load

PROJECTOR = r"""
device Projector {
    framing line "\r" prompt ":"
    property power: enum { off = "00", on = "01", warming = "02", cooling = "03" } {
        query "PWR?" reply /^PWR=(?P<value>\d\d)$/
        set "PWR {value}" with { on = "ON", off = "OFF" }
    }
    property source: enum { hdmi1 = "30", hdmi2 = "A0" } { set "SOURCE {value}" }
    modes from power {
        off -> warming : on set power = on
        warming -> on  : after 40s or when power == on
        on -> cooling  : on set power = off
        cooling -> off : after 20s
        hold set source until on
    }
}
"""


def program() -> Program:
    return Program.from_model(load(PROJECTOR, "projector.iot"))


def test_mode_table_names_triggers_as_the_file_does() -> None:
    table = program().modes["Projector"]
    assert table["initial"] == "off"
    edges = {
        (t["trigger"], source, t["dest"])
        for t in table["transitions"]
        for source in (t["source"] if isinstance(t["source"], list) else [t["source"]])
    }
    written = {
        ("set power=on", "off", "warming"),
        ("after 40s", "warming", "on"),
        ("power==on", "warming", "on"),
        ("set power=off", "on", "cooling"),
        ("after 20s", "cooling", "off"),
    }
    # Besides what the file says, a reported value that names a mode moves there from any
    # other mode (the device outranks the model's guess), after the file's own transitions.
    follow = {
        (f"power=={mode}", source, mode)
        for mode in ("off", "on", "warming", "cooling")
        for source in ("off", "on", "warming", "cooling")
        if source != mode and (f"power=={mode}", source, mode) not in written
    }
    assert edges == written | follow
    timers = {s["name"]: s.get("timeout") for s in table["states"]}
    assert timers == {"off": None, "warming": 40, "on": None, "cooling": 20}


def test_graph_folds_the_protocol_unless_asked() -> None:
    p = program()
    folded = render(p.machines["Projector"], "p", "mermaid", p.modes["Projector"], True)
    assert "modes.off --> modes.warming: set power=on" in folded
    assert "protocol.idle" not in folded
    shown = render(p.machines["Projector"], "p", "mermaid", p.modes["Projector"], False)
    assert "protocol.idle --> protocol.set-power: write-power" in shown
    assert "modes.warming --> modes.on: after 40s | power==on" in shown


def test_compiled_driver_carries_the_modes(tmp_path: Path) -> None:
    p = program()
    driver = tmp_path / "projector_driver.py"
    driver.write_text(driver_source(p, driver.name))
    loaded = load_program(driver)
    assert loaded.modes == p.modes
    assert loaded.model == p.model
