"""Model -> machine table: the states and transitions of one component, as plain data.

The table is the single description of a component's protocol machine. The runtime builds its
asyncio machine from it and `pyiot graph` draws it, so the picture is the machine that runs; a
compiled driver carries the same table as a literal.
"""

from __future__ import annotations

from typing import Any

from pyiot.lang.model import Device

MachineTable = dict[str, Any]

# Protocol states every component has, in the order a connection lives through them.
OFFLINE = "offline"
CONNECTING = "connecting"
IDLE = "idle"
AWAITING_REPLY = "awaiting"  # no underscore: nested machines use "_" to separate levels
RETRYING = "retrying"

_ONLINE_STATES = [CONNECTING, IDLE, AWAITING_REPLY, RETRYING]


def machine_table(device: Device) -> MachineTable:
    """The protocol machine of a synchronous component of this device.

    One request is outstanding at a time: `send` leaves `idle` with a request on the wire,
    a matching `reply` (or the device's `error` reply) returns to `idle`, and the state's
    timer fires `expire` when the device stays silent; from `retrying` the engine either
    `resend`s or, after the last retry, `give_up`s. A command that nothing answers (a
    write-only property) returns to `idle` once `sent`.
    """
    return {
        "initial": OFFLINE,
        "states": [
            {"name": OFFLINE},
            {"name": CONNECTING},
            {"name": IDLE},
            {"name": AWAITING_REPLY, "timeout": device.timeout, "on_timeout": "expire"},
            {"name": RETRYING},
        ],
        "transitions": [
            {"trigger": "connect", "source": OFFLINE, "dest": CONNECTING},
            {"trigger": "connected", "source": CONNECTING, "dest": IDLE},
            {"trigger": "connect_failed", "source": CONNECTING, "dest": OFFLINE},
            {"trigger": "send", "source": IDLE, "dest": AWAITING_REPLY},
            {"trigger": "reply", "source": AWAITING_REPLY, "dest": IDLE},
            {"trigger": "error_reply", "source": AWAITING_REPLY, "dest": IDLE},
            # A write-only command: nothing answers it, written is done.
            {"trigger": "sent", "source": AWAITING_REPLY, "dest": IDLE},
            {"trigger": "expire", "source": AWAITING_REPLY, "dest": RETRYING},
            {"trigger": "resend", "source": RETRYING, "dest": AWAITING_REPLY},
            {"trigger": "give_up", "source": RETRYING, "dest": IDLE},
            {"trigger": "link_lost", "source": _ONLINE_STATES, "dest": OFFLINE},
        ],
    }


def mode_table(device: Device) -> MachineTable | None:
    """The machine of the device's declared modes, or None when it declares none.

    Triggers are named as the user wrote them (`set power=on`, `power==on`, `after 40s`) so
    the graph reads like the `.iot` file; `whens` and `sets` tell the engine which observed
    value or sent command fires which trigger.
    """
    modes = device.modes
    if modes is None:
        return None
    states: dict[str, dict] = {name: {"name": name} for name in modes.names}
    transitions: list[dict] = []
    whens: dict[str, list] = {}
    sets: dict[str, list] = {}
    for move in modes.transitions:
        for trigger in move.triggers:
            if trigger.kind == "after":
                name = f"after {trigger.seconds:g}s"
                state = states[move.source]
                state["timeout"] = trigger.seconds
                state["on_timeout"] = name
            elif trigger.kind == "set":
                name = f"set {trigger.prop}={_text(trigger.value)}"
                sets[name] = [trigger.prop, trigger.value]
            else:
                name = f"{trigger.prop}{trigger.op}{_text(trigger.value)}"
                whens[name] = [trigger.prop, trigger.op, trigger.value]
            transitions.append({"trigger": name, "source": move.source, "dest": move.dest})
    return {
        "initial": modes.names[0],
        "states": list(states.values()),
        "transitions": transitions,
        "source": modes.source,
        "whens": whens,
        "sets": sets,
    }


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
