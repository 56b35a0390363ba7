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


def build_machine(model: Any, table: MachineTable) -> ProtocolMachine:
    """Attach a running machine to `model` (the component engine): triggers become its methods.

    `queued=True` lets a trigger that fires while another transition is under way (a reply
    arriving while the timer expires) run after it, in order, instead of interleaving.
    """
    return ProtocolMachine(
        model=model,
        states=copy.deepcopy(table["states"]),
        transitions=copy.deepcopy(table["transitions"]),
        initial=table["initial"],
        queued=True,
        auto_transitions=False,
        send_event=False,
    )


def build_graph_machine(table: MachineTable, title: str, engine: str) -> HierarchicalGraphMachine:
    """A drawing-only machine of the same table (`engine` is "mermaid" or "graphviz")."""
    states = copy.deepcopy(table["states"])
    for state in states:
        # Timers are runtime behaviour: in the drawing they are the `expire` edge.
        state.pop("timeout", None)
        state.pop("on_timeout", None)
    return HierarchicalGraphMachine(
        states=states,
        transitions=copy.deepcopy(table["transitions"]),
        initial=table["initial"],
        auto_transitions=False,
        title=title,
        graph_engine=engine,
        show_conditions=True,
    )
