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
