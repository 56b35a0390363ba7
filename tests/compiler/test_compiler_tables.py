"""The machine table: the protocol states and transitions every component runs and draws."""

from __future__ import annotations

import asyncio

import pytest

from pyiot.compiler import Program, compile_file
from pyiot.compiler.machine import build_machine
from pyiot.compiler.tables import machine_table
from pyiot.lang import load
from tests.waiting import eventually

STATES = ["offline", "connecting", "idle", "awaiting", "retrying"]
EDGES = {
    ("connect", "offline", "connecting"),
    ("connected", "connecting", "idle"),
    ("connect_failed", "connecting", "offline"),
    ("send", "idle", "awaiting"),
    ("reply", "awaiting", "idle"),
    ("error_reply", "awaiting", "idle"),
    ("expire", "awaiting", "retrying"),
    ("resend", "retrying", "awaiting"),
    ("give_up", "retrying", "idle"),
    ("sent", "awaiting", "idle"),
    ("link_lost", "connecting", "offline"),
    ("link_lost", "idle", "offline"),
    ("link_lost", "awaiting", "offline"),
    ("link_lost", "retrying", "offline"),
}


def _edges(table) -> set[tuple[str, str, str]]:
    edges = set()
    for t in table["transitions"]:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        edges |= {(t["trigger"], s, t["dest"]) for s in sources}
    return edges


def test_relay_table_states(relay_program: Program):
    table = relay_program.machines["Relay"]
    assert table["initial"] == "offline"
    assert [s["name"] for s in table["states"]] == STATES


def test_relay_table_transitions(relay_program: Program):
    assert _edges(relay_program.machines["Relay"]) == EDGES


def test_waiting_for_a_reply_has_the_device_timeout(relay_program: Program):
    (awaiting,) = [s for s in relay_program.machines["Relay"]["states"] if s["name"] == "awaiting"]
    assert awaiting["timeout"] == 0.5
    assert awaiting["on_timeout"] == "expire"
    timed = [s["name"] for s in relay_program.machines["Relay"]["states"] if "timeout" in s]
    assert timed == ["awaiting"]


def test_timeout_follows_the_file():
    model = load("device Slow { timeout 3s }\ndevice Fast { timeout 20ms }")
    program = Program.from_model(model)
    timeouts = {
        name: next(s["timeout"] for s in table["states"] if s["name"] == "awaiting")
        for name, table in program.machines.items()
    }
    assert timeouts == {"Slow": 3.0, "Fast": pytest.approx(0.02)}


def test_one_table_per_device_type(rich_path):
    program = compile_file(rich_path)
    assert set(program.machines) == {"Zone", "Receiver", "import"}


def test_tables_are_plain_data(relay_program: Program):
    """A compiled driver carries the table as a Python literal: only dicts, lists and scalars."""

    def plain(value) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return isinstance(value, (str, int, float, bool, type(None)))

    assert plain(relay_program.machines["Relay"])


class _Model:
    """A stand-in for the engine: the machine only needs an object to attach triggers to."""


def test_running_machine_walks_the_protocol(relay_program: Program):
    """The table drives a real transitions machine: the happy path, a retry, and a lost link."""

    async def walk() -> list[str]:
        model = _Model()
        build_machine(model, machine_table(relay_program.model.devices["Relay"]))
        seen = [model.state]
        for trigger in [
            "connect",
            "connected",
            "send",
            "reply",
            "send",
            "expire",
            "resend",
            "error_reply",
            "send",
            "link_lost",
        ]:
            await getattr(model, trigger)()
            seen.append(model.state)
        return seen

    assert asyncio.run(walk()) == [
        "offline",
        "connecting",
        "idle",
        "awaiting",
        "idle",
        "awaiting",
        "retrying",
        "awaiting",
        "idle",
        "awaiting",
        "offline",
    ]


def test_awaiting_times_out_into_retrying():
    device = load("device D { timeout 50ms }").devices["D"]

    async def wait_for_expiry() -> str:
        model = _Model()
        build_machine(model, machine_table(device))
        await model.connect()
        await model.connected()
        await model.send()
        assert model.state == "awaiting"
        await eventually(lambda: model.state != "awaiting", what="the 50 ms timer")
        return model.state

    assert asyncio.run(wait_for_expiry()) == "retrying"


def test_triggers_outside_the_table_are_refused(relay_program: Program):
    from transitions import MachineError

    async def bad() -> None:
        model = _Model()
        build_machine(model, relay_program.machines["Relay"])
        await model.send()  # nothing may be sent before connecting

    with pytest.raises(MachineError):
        asyncio.run(bad())
