"""Model -> machine table: the states and transitions of one device's components, as plain data.

The table is the single description of a component's protocol machine, specific to its device:
each exchange the device has (a property's or a group's query, a property's set) is a state of
its own with its own reply timeout, and each has a retry state whose timer is the backoff. The
runtime builds its machine from it (compiler/machine.py), `pyiot graph` draws it, and a compiled
driver carries it as a literal, so the picture is the machine that runs.

Generated names join their parts with "-" (`query-relayState`, `retry-set-volume`): "_" is
the level separator of transitions' nested machines (the graph nests the modes beside the
protocol) and property names may contain it; "-" appears in no `.iot` identifier.
"""

from __future__ import annotations

from typing import Any

from pyiot.lang.model import Device, Property

MachineTable = dict[str, Any]

# Protocol states every component has, in the order a connection lives through them.
OFFLINE = "offline"
CONNECTING = "connecting"
IDLE = "idle"
# Between the link opening and `idle`, when the device file asks for them: waiting for the
# device's `greeting` (its timer is a failed connect), then writing the `send ... on connect`
# commands (done once `sent`).
GREETING = "connect-greeting"
CONNECT_SEND = "connect-send"
# After a set nothing answers, on a device with an error queue (SCPI): its query, which says
# whether the set was taken (`+0,"No error"`) or not (`-222,"Data out of range"`).
CHECK_ERRORS = "check-errors"

# Triggers the engine fires from what happens on the link.
CONNECT, CONNECTED, CONNECT_FAILED = "connect", "connected", "connect_failed"
GREETED = "greeted"
LINK_LOST = "link_lost"
REPLY, ERROR_REPLY, SENT, EXPIRE, RESEND = "reply", "error_reply", "sent", "expire", "resend"

# The guard on `expire`: a retry is left (else the exchange gives up, back to idle).
RETRIES_LEFT = "retries_left"

# Model attributes holding the delays of timers that change at run time (see machine.py).
RECONNECT_DELAY = "reconnect_delay"
BACKOFF_DELAY = "backoff_delay"


def query_state(name: str) -> str:
    """The state of waiting for the reply to a property's (or group's) query."""
    return f"query-{name}"


def set_state(name: str) -> str:
    """The state of waiting for the device to confirm a property's set."""
    return f"set-{name}"


def retry_state(exchange: str) -> str:
    """The backoff before an exchange is sent again."""
    return f"retry-{exchange}"


def read_trigger(name: str) -> str:
    return f"read-{name}"


def poll_trigger(name: str) -> str:
    return f"poll-{name}"


def write_trigger(name: str) -> str:
    return f"write-{name}"


# The exchange of the Python API's `queryStatus()` texts (pyiot.legacy), one for all of them.
STATUS_QUERY = "status"


def machine_table(device: Device, synchronous: bool | None = None) -> MachineTable:
    """The protocol machine of the components of this device.

    From `idle`, `read-X` (a read asked for) or `poll-X` (the poll timer) enters `query-X`,
    whose entry writes X's query; `reply` returns to `idle`, the device's `error_reply` too;
    the state's timer fires `expire`, which moves to `retry-X` while a retry is left (its timer
    is the backoff, doubling; it fires `resend`, back to `query-X`) and gives up to `idle`
    otherwise. `write-P` enters `set-P` the same way; a set nothing answers is done once `sent`.
    `offline`'s timer is the reconnect backoff; it fires `connect`. A set waits its property's
    `set timeout` when it has one (a projector's colon after warm-up), a query its `timeout`.

    `connected` leads to `idle` through `connect-greeting` when the device has a `greeting`
    (`greeted` leaves it; its timer, the device's timeout, fires `connect_failed`) and through
    `connect-send` when it has `send ... on connect` commands (`sent` leaves it).

    `synchronous` is for the Python API's components (pyiot.legacy): a synchronous one's
    commands are all answered, an asynchronous one's none, and its `queryStatus()` texts share
    one exchange, `query-status`.
    """
    states: list[dict] = [
        {"name": OFFLINE, "delay": RECONNECT_DELAY, "on_timeout": CONNECT},
        {"name": CONNECTING},
        {"name": IDLE},
    ]
    transitions: list[dict] = [
        {"trigger": CONNECT, "source": OFFLINE, "dest": CONNECTING},
        {"trigger": CONNECT_FAILED, "source": CONNECTING, "dest": OFFLINE},
    ]
    exchanges: dict[str, dict] = {}
    # The steps from an open link to `idle`, each left by its own trigger.
    steps: list[tuple[str, str]] = [(CONNECTING, CONNECTED)]
    if device.greeting is not None or device.login is not None:
        states.append({"name": GREETING, "timeout": device.timeout, "on_timeout": CONNECT_FAILED})
        transitions.append({"trigger": CONNECT_FAILED, "source": GREETING, "dest": OFFLINE})
        greetings = [repr(device.greeting)] if device.greeting is not None else []
        if device.login is not None:  # a greeting that asks for a password (PJLink class 1)
            greetings.append(f"/{device.login.greeting.source}/")
        exchanges[GREETING] = {"command": "(listen)", "reply": " or ".join(greetings)}
        steps.append((GREETING, GREETED))
    if device.connect_commands:
        states.append({"name": CONNECT_SEND})
        exchanges[CONNECT_SEND] = {"command": "; ".join(device.connect_commands), "reply": None}
        steps.append((CONNECT_SEND, SENT))
    for (source, trigger), (dest, _) in zip(steps, [*steps[1:], (IDLE, "")], strict=True):
        transitions.append({"trigger": trigger, "source": source, "dest": dest})
    polled = _polled(device)
    queue = getattr(device, "error_queue", None) if synchronous is None else None

    def exchange(state: str, timeout: float, command: str, reply: str | None) -> None:
        states.append({"name": state, "timeout": timeout, "on_timeout": EXPIRE})
        states.append({"name": retry_state(state), "delay": BACKOFF_DELAY, "on_timeout": RESEND})
        exchanges[state] = {"command": command, "reply": reply}
        transitions.extend(
            [
                {"trigger": REPLY, "source": state, "dest": IDLE},
                {"trigger": ERROR_REPLY, "source": state, "dest": IDLE},
                {
                    "trigger": EXPIRE,
                    "source": state,
                    "dest": retry_state(state),
                    "conditions": RETRIES_LEFT,
                },
                {"trigger": EXPIRE, "source": state, "dest": IDLE, "unless": RETRIES_LEFT},
                {"trigger": RESEND, "source": retry_state(state), "dest": state},
            ]
        )

    if queue is not None:
        exchange(CHECK_ERRORS, device.timeout, queue.query, repr(queue.empty))
    for group in device.groups.values():
        state = query_state(group.name)
        exchange(state, device.timeout, group.query, _pattern(group.reply))
        transitions.append({"trigger": read_trigger(group.name), "source": IDLE, "dest": state})
        if group.name in polled:
            transitions.append({"trigger": poll_trigger(group.name), "source": IDLE, "dest": state})
    for prop in device.properties.values():
        timeout = prop.timeout or device.timeout
        if prop.query and prop.group is None:
            state = query_state(prop.name)
            exchange(state, timeout, prop.query, _pattern(prop.reply))
            transitions.append({"trigger": read_trigger(prop.name), "source": IDLE, "dest": state})
            if prop.name in polled:
                transitions.append(
                    {"trigger": poll_trigger(prop.name), "source": IDLE, "dest": state}
                )
        if prop.set_format is not None:
            state = set_state(prop.name)
            answered = _answered(device, prop) if synchronous is None else synchronous
            if answered:
                set_timeout = prop.set_timeout or timeout
                exchange(state, set_timeout, prop.set_format, _pattern(prop.ack or prop.reply))
            else:
                # A command nothing answers (a write-only property) is done once written, or
                # once the error queue says it was taken.
                states.append({"name": state})
                exchanges[state] = {"command": prop.set_format, "reply": None}
                after = CHECK_ERRORS if queue is not None else IDLE
                transitions.append({"trigger": SENT, "source": state, "dest": after})
            transitions.append({"trigger": write_trigger(prop.name), "source": IDLE, "dest": state})
    for joint in getattr(device, "joint_sets", []):
        # One command setting several properties: an exchange of its own, `set-level-fade`.
        state = set_state(joint.name)
        if device.ack_reply or device.prompt:
            exchange(state, device.timeout, joint.format, _pattern(device.ack_reply))
        else:
            states.append({"name": state})
            exchanges[state] = {"command": joint.format, "reply": None}
            after = CHECK_ERRORS if queue is not None else IDLE
            transitions.append({"trigger": SENT, "source": state, "dest": after})
        transitions.append({"trigger": write_trigger(joint.name), "source": IDLE, "dest": state})
    if synchronous is not None:
        state = query_state(STATUS_QUERY)
        if synchronous:
            exchange(state, device.timeout, "queryStatus()", None)
        else:
            states.append({"name": state})
            exchanges[state] = {"command": "queryStatus()", "reply": None}
            transitions.append({"trigger": SENT, "source": state, "dest": IDLE})
        transitions.append({"trigger": read_trigger(STATUS_QUERY), "source": IDLE, "dest": state})
    online = [s["name"] for s in states if s["name"] != OFFLINE]
    transitions.append({"trigger": LINK_LOST, "source": online, "dest": OFFLINE})
    return {
        "initial": OFFLINE,
        "states": states,
        "transitions": transitions,
        # What each exchange writes and waits for: the graph's labels.
        "exchanges": exchanges,
        # The machine's poll timers: every `every` seconds, read these (when `when` holds).
        "polls": _poll_timers(device),
        "retries": device.retries,
        "backoff": device.backoff,
    }


def _answered(device: Device, prop: Property) -> bool:
    """Whether anything on the wire answers a set (as DeviceProtocol.expects_answer decides)."""
    if prop.set_unanswered:
        return bool(device.prompt)  # a prompt still says "done"
    return bool(prop.reply or prop.ack or device.ack_reply or device.prompt)


def _pattern(regex: Any) -> str | None:
    return f"/{regex.source}/{regex.flags}" if regex is not None else None


def _polled(device: Device) -> set[str]:
    return {name for timer in _poll_timers(device) for name in timer["reads"]}


def _poll_timers(device: Device) -> list[dict]:
    """The poll timers, as DeviceProtocol.poll_groups groups them (one per period and condition)."""
    timers: dict[tuple[float, str | None], dict] = {}
    targets: list[tuple[str, float | None, Any]] = [
        (g.name, g.poll_every, g.poll_when) for g in device.groups.values()
    ]
    targets += [
        (p.name, p.poll_every, p.poll_when)
        for p in device.properties.values()
        if p.query and p.group is None
    ]
    for name, every, when in targets:
        period = every or device.poll_every
        condition = when or device.poll_when
        if period:
            text = _condition_text(condition)
            timer = timers.setdefault((period, text), {"every": period, "when": text, "reads": []})
            timer["reads"].append(name)
    return list(timers.values())


def _condition_text(condition: Any) -> str | None:
    if condition is None:
        return None
    return " and ".join(f"{c.prop}{c.op}{_text(c.value)}" for c in condition.comparisons)


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
    # The device's own report outranks the model's guess: a value of the source property that
    # names a mode moves there from anywhere, after the file's own transitions on that value
    # (transitions tries a trigger's transitions in order).
    source = device.properties.get(modes.source)
    for mode in modes.names:
        if source is None or not _can_name(source, mode):
            continue
        name = f"{modes.source}=={mode}"
        taken = {t["source"] for t in transitions if t["trigger"] == name}
        sources = [m for m in modes.names if m != mode and m not in taken]
        if sources:
            transitions.append({"trigger": name, "source": sources, "dest": mode})
            whens.setdefault(name, [modes.source, "==", mode])
    return {
        "initial": modes.names[0],
        "states": list(states.values()),
        "transitions": transitions,
        "source": modes.source,
        "whens": whens,
        "sets": sets,
    }


def _can_name(prop: Property, mode: str) -> bool:
    """Whether a value of `prop` can be the text `mode` (an enum choice, or any string)."""
    kind = prop.type.kind
    return kind == "string" or (kind == "enum" and mode in prop.type.choices)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
