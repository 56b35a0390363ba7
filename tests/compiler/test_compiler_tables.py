"""The machine table: each device's own protocol states and transitions, run and drawn."""

from __future__ import annotations

import asyncio

from pyiot.compiler import Program, compile_file
from pyiot.compiler.machine import build_machine
from pyiot.lang import load
from tests.waiting import eventually

STATES = [
    "offline",
    "connecting",
    "idle",
    "query-relayState",
    "retry-query-relayState",
    "set-relayState",
    "retry-set-relayState",
]
ONLINE = [s for s in STATES if s != "offline"]
EDGES = {
    ("connect", "offline", "connecting"),
    ("connected", "connecting", "idle"),
    ("connect_failed", "connecting", "offline"),
    ("read-relayState", "idle", "query-relayState"),
    ("poll-relayState", "idle", "query-relayState"),
    ("write-relayState", "idle", "set-relayState"),
    *{
        edge
        for exchange in ("query-relayState", "set-relayState")
        for edge in [
            ("reply", exchange, "idle"),
            ("error_reply", exchange, "idle"),
            ("expire", exchange, f"retry-{exchange}"),
            ("expire", exchange, "idle"),
            ("resend", f"retry-{exchange}", exchange),
        ]
    },
    *{("link_lost", s, "offline") for s in ONLINE},
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


def test_retries_are_a_condition_on_expire(relay_program: Program):
    expiries = [
        t for t in relay_program.machines["Relay"]["transitions"] if t["trigger"] == "expire"
    ]
    assert {t.get("conditions") for t in expiries} == {"retries_left", None}
    assert {t.get("unless") for t in expiries} == {"retries_left", None}


def test_each_exchange_waits_its_own_timeout():
    model = load(
        "device D { timeout 3s\n"
        '  property a: int { query "A?" reply /^(?P<value>\\d+)$/ }\n'
        '  property b: int { query "B?" reply /^(?P<value>\\d+)$/ timeout 20ms }\n'
        "}"
    )
    table = Program.from_model(model).machines["D"]
    timeouts = {s["name"]: s.get("timeout") for s in table["states"] if "query-" in s["name"]}
    assert timeouts == {"query-a": 3.0, "query-b": 0.02, "retry-query-a": None, "retry-query-b": None}
    assert table["exchanges"]["query-b"] == {"command": "B?", "reply": "/^(?P<value>\\d+)$/"}


def test_different_devices_have_different_machines(rich_path):
    program = compile_file(rich_path)
    assert set(program.machines) == {"Zone", "Receiver", "import"}
    states = {name: {s["name"] for s in t["states"]} for name, t in program.machines.items()}
    assert "query-power" in states["Zone"] and "set-volume" in states["Zone"]
    assert "query-name" in states["Receiver"] and "query-power" not in states["Receiver"]
    assert states["import"] == {"offline", "connecting", "idle"}


def test_polls_are_machine_timers(rich_path):
    zone = compile_file(rich_path).machines["Zone"]
    assert {(p["every"], tuple(p["reads"])) for p in zone["polls"]} == {
        (5.0, ("power",)),
        (60.0, ("gain",)),
    }


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
    """A stand-in for the engine: the machine needs an object, its retry count and delays."""

    def __init__(self, retries: int = 1):
        self.tries = 0
        self.retries = retries
        self.reconnect_delay = 60.0
        self.backoff_delay = 0.0

    def retries_left(self, event=None) -> bool:
        return self.tries <= self.retries


def test_running_machine_walks_the_protocol(relay_program: Program):
    """The table drives a real transitions machine: the happy path, a retry, and a lost link."""

    async def walk() -> list[str]:
        model = _Model()
        build_machine(model, relay_program.machines["Relay"])
        seen = [model.state]
        for trigger in [
            "connect",
            "connected",
            "poll-relayState",
            "reply",
            "write-relayState",
            "reply",
            "read-relayState",
            "link_lost",
        ]:
            model.trigger(trigger)
            seen.append(model.state)
        return seen

    assert asyncio.run(walk()) == [
        "offline",
        "connecting",
        "idle",
        "query-relayState",
        "idle",
        "set-relayState",
        "idle",
        "query-relayState",
        "offline",
    ]


def test_silence_retries_then_gives_up():
    device = load(
        'device D { timeout 20ms retries 1 property a: int { query "A?" reply /^(?P<value>\\d+)$/ } }'
    )
    table = Program.from_model(device).machines["D"]

    async def silence() -> list[str]:
        model = _Model(retries=1)
        build_machine(model, table, on_change="seen")
        states: list[str] = []

        def seen(event) -> None:
            states.append(model.state)
            if model.state == "query-a":
                model.tries += 1  # the engine counts its writes

        model.seen = seen
        model.trigger("connect")
        model.trigger("connected")
        model.trigger("read-a")
        await eventually(lambda: len(states) >= 6)
        return states

    assert asyncio.run(silence()) == [
        "connecting",
        "idle",
        "query-a",
        "retry-query-a",
        "query-a",
        "idle",
    ]


def test_triggers_outside_the_table_change_nothing(relay_program: Program):
    async def bad() -> str:
        model = _Model()
        build_machine(model, relay_program.machines["Relay"])
        model.trigger("poll-relayState")  # nothing may be sent before connecting
        return model.state

    assert asyncio.run(bad()) == "offline"
