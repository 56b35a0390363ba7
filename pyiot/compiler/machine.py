"""Machine table -> `transitions` machines: the asyncio one that runs, the graph one that draws.

This is the one place that builds `transitions` machines, so both kinds come from the same table.
"""

from __future__ import annotations

import copy
from typing import Any

from transitions.extensions import HierarchicalGraphMachine
from transitions.extensions.asyncio import AsyncTimeout, HierarchicalAsyncMachine
from transitions.extensions.states import add_state_features

from pyiot.compiler.tables import MachineTable


@add_state_features(AsyncTimeout)
class ProtocolMachine(HierarchicalAsyncMachine):
    """The asyncio machine a component runs: hierarchical (modes nest), with state timers."""


def build_machine(model: Any, table: MachineTable, jumps: bool = False) -> ProtocolMachine:
    """Attach a running machine to `model`: the table's triggers become its methods.

    `queued=True` lets a trigger that fires while another transition is under way (a reply
    arriving while the timer expires) run after it, in order, instead of interleaving.
    `jumps` adds `to_<state>` triggers (a device's modes follow what the device reports).
    """
    return ProtocolMachine(
        model=model,
        states=copy.deepcopy(table["states"]),
        transitions=copy.deepcopy(table["transitions"]),
        initial=table["initial"],
        queued=True,
        auto_transitions=jumps,
        send_event=False,
    )


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
                {**t, "source": [f"{name}_{s}" for s in sources], "dest": f"{name}_{t['dest']}"}
            )
    initial = "protocol" if fold_protocol else f"protocol_{protocol['initial']}"
    return _graph(title, engine, states, transitions, initial)


def _untimed(states: list[dict]) -> list[dict]:
    # Timers are runtime behaviour: in the drawing they are the edge they fire.
    return [
        {k: v for k, v in state.items() if k not in ("timeout", "on_timeout")}
        for state in copy.deepcopy(states)
    ]


def _graph(title: str, engine: str, states: list, transitions: list, initial: str):
    return HierarchicalGraphMachine(
        states=states,
        transitions=copy.deepcopy(transitions),
        initial=initial,
        auto_transitions=False,
        title=title,
        graph_engine=engine,
        show_conditions=True,
    )
