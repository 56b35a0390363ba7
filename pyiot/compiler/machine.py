"""Machine table -> `transitions` machines: the one that runs, and the one that draws.

This is the one place that builds `transitions` machines, so both kinds come from the same table.

The running machine is transitions' synchronous `Machine`, one per table (so one per device
type), with every component of that device added as a model: a trigger is a plain call (a few
µs, no task, no `gather`), and 1,000 components cost 1,000 small models, not 1,000 machines.
I/O stays with the engine in asyncio. State timers are `loop.call_later` handles, started on
entering a timed state and cancelled on leaving it (transitions' own `Timeout` runs a thread
per timer): a state's `timeout` is fixed, its `delay` names a model attribute read on entry
(the reconnect and retry backoffs grow at run time).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

from transitions import Machine
from transitions.extensions import HierarchicalGraphMachine
from transitions.extensions.nesting import NestedState

from pyiot.compiler.tables import MachineTable

# The keys of a table's state that are ours, not transitions' (the timers).
_TIMER_KEYS = ("timeout", "delay", "on_timeout")

# Running machines by table identity: each device's table is built once per program.
_MACHINES: dict[tuple[int, bool, str | None], tuple[MachineTable, DeviceMachine]] = {}


class DeviceMachine(Machine):
    """The machine of one device type; its components are its models.

    `queued=True`: a trigger fired from inside a transition's callbacks runs after it, in order.
    `ignore_invalid_triggers`: a late reply or a timer that lost a race is normal on a wire,
    not an error; the engine checks `state` where it matters.
    """

    def __init__(
        self,
        table: MachineTable,
        jumps: bool = False,
        on_change: Callable[[Any], None] | str | None = None,
    ):
        self.timers: dict[str, tuple[float | None, str | None, str]] = {}
        states = []
        for spec in table["states"]:
            state = {k: v for k, v in spec.items() if k not in _TIMER_KEYS}
            if "on_timeout" in spec:
                self.timers[spec["name"]] = (
                    spec.get("timeout"),
                    spec.get("delay"),
                    spec["on_timeout"],
                )
                state["on_enter"] = [self._start_timer]
                state["on_exit"] = [self._stop_timer]
            states.append(state)
        super().__init__(
            model=None,
            states=states,
            transitions=copy.deepcopy(table["transitions"]),
            initial=table["initial"],
            queued=True,
            auto_transitions=jumps,
            send_event=True,
            ignore_invalid_triggers=True,
            after_state_change=[on_change] if on_change is not None else None,
        )

    def _start_timer(self, event: Any) -> None:
        model = event.model
        seconds, delay, trigger = self.timers[event.state.name]
        if delay is not None:
            seconds = getattr(model, delay)
        if seconds is None:
            return
        model._timer = asyncio.get_running_loop().call_later(
            seconds, self._expire, model, event.state.name, trigger
        )

    def _stop_timer(self, event: Any) -> None:
        timer = getattr(event.model, "_timer", None)
        if timer is not None:
            timer.cancel()
            event.model._timer = None

    def _expire(self, model: Any, state: str, trigger: str) -> None:
        model._timer = None
        # One loop iteration later: after a stalled loop (a full GC, thousands of replies at
        # once), asyncio runs due timers in the iteration that also wakes the readers holding
        # the replies that came meanwhile; those replies must count before the timeout does.
        asyncio.get_running_loop().call_soon(self._expired, model, state, trigger)

    def _expired(self, model: Any, state: str, trigger: str) -> None:
        if model._timer is None and getattr(model, "state", None) == state:
            model.trigger(trigger)


def stop_timer(model: Any) -> None:
    """Cancel the model's state timer (the component stops)."""
    timer = getattr(model, "_timer", None)
    if timer is not None:
        timer.cancel()
        model._timer = None


def build_machine(
    model: Any, table: MachineTable, jumps: bool = False, on_change: str | None = None
) -> DeviceMachine:
    """Add `model` to the running machine of `table`: the table's triggers become its methods.

    `jumps` adds `to_<state>` triggers (a device's modes follow what the device reports);
    `on_change` names the model's method called after each transition with its event.
    """
    key = (id(table), jumps, on_change)
    entry = _MACHINES.get(key)
    if entry is None or entry[0] is not table:
        entry = (table, DeviceMachine(table, jumps=jumps, on_change=on_change))
        _MACHINES[key] = entry
    entry[1].add_model(model)
    return entry[1]


class _DrawnState(NestedState):
    # "." between levels: generated names use "-", and property names may hold "_".
    separator = "."


class _Drawing(HierarchicalGraphMachine):
    state_cls = _DrawnState


def build_graph_machine(
    title: str,
    engine: str,
    protocol: MachineTable,
    modes: MachineTable | None = None,
    fold_protocol: bool = False,
) -> HierarchicalGraphMachine:
    """A drawing-only machine: the protocol machine, and the modes beside it when declared.

    With modes, each machine is a composite state (`protocol`, `modes`) of one diagram;
    `fold_protocol` draws the protocol machine as a single state to let the modes stand out.
    """
    if modes is None:
        return _graph(
            title,
            engine,
            _untimed(protocol["states"]),
            protocol["transitions"],
            protocol["initial"],
        )
    parts = {"modes": modes} if fold_protocol else {"protocol": protocol, "modes": modes}
    states: list[dict] = [{"name": "protocol"}] if fold_protocol else []
    transitions: list[dict] = []
    for name, table in parts.items():
        states.append(
            {"name": name, "children": _untimed(table["states"]), "initial": table["initial"]}
        )
        for t in table["transitions"]:
            sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
            transitions.append(
                {**t, "source": [f"{name}.{s}" for s in sources], "dest": f"{name}.{t['dest']}"}
            )
    initial = "protocol" if fold_protocol else f"protocol.{protocol['initial']}"
    return _graph(title, engine, states, transitions, initial)


def _untimed(states: list[dict]) -> list[dict]:
    # Timers are runtime behaviour: in the drawing they are the edge they fire.
    return [
        {k: v for k, v in state.items() if k not in _TIMER_KEYS}
        for state in copy.deepcopy(states)
    ]


def _graph(title: str, engine: str, states: list, transitions: list, initial: str):
    return _Drawing(
        states=states,
        transitions=copy.deepcopy(transitions),
        initial=initial,
        auto_transitions=False,
        title=title,
        graph_engine=engine,  # type: ignore[arg-type]
        show_conditions=True,
    )


def edges(table: MachineTable) -> list[dict[str, str]]:
    """The table's transitions one edge each: `source`, `dest`, `trigger` (for JSON output)."""
    result = []
    for t in table["transitions"]:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        for source in sources:
            result.append({"source": source, "dest": t["dest"], "trigger": t["trigger"]})
    return result
