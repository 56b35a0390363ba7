"""Draw a component's state machine: Mermaid text always, dot/svg/png through Graphviz, or JSON.

Each exchange state is labelled with the command it writes and the reply pattern it waits for,
with the component's own arguments filled in, so two devices never draw alike.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from typing import Any

from pyiot.compiler.machine import build_graph_machine, edges
from pyiot.compiler.tables import MachineTable
from pyiot.errors import PyiotError


class GraphvizMissing(PyiotError, RuntimeError):
    """Graphviz (the `dot` program or the `graphviz` Python package) is not installed."""

    what = "Graphviz not installed"


def as_data(
    table: MachineTable, modes: MachineTable | None = None
) -> dict[str, list[Any]]:
    """The machine as data: its states, and its transitions one edge each.

    The protocol's states and edges are named as the running machine names them (what
    `pyiot run -v --log-format json` logs); the modes' are prefixed `modes.`.
    """
    states = [s["name"] for s in table["states"]]
    transitions = edges(table)
    if modes is not None:
        states += [f"modes.{s['name']}" for s in modes["states"]]
        transitions += [
            {
                "source": f"modes.{e['source']}",
                "dest": f"modes.{e['dest']}",
                "trigger": e["trigger"],
            }
            for e in edges(modes)
        ]
    return {"states": states, "transitions": transitions}


def render(
    table: MachineTable,
    title: str,
    fmt: str = "mermaid",
    modes: MachineTable | None = None,
    fold_protocol: bool = False,
    args: dict[str, Any] | None = None,
) -> str | bytes:
    """The machine as Mermaid `stateDiagram-v2` text, dot source, or SVG/PNG bytes."""
    labels = _labels(table, args or {})
    if fmt == "mermaid":
        machine = build_graph_machine(title, "mermaid", table, modes, fold_protocol)
        return _label_mermaid(machine.get_graph().draw(None), labels)
    try:
        import graphviz
    except ImportError:
        raise GraphvizMissing(
            "the graphviz Python package is missing (a dependency of pyiot): pip install graphviz"
        ) from None
    graph = build_graph_machine(title, "graphviz", table, modes, fold_protocol).get_graph()
    source = _label_dot(graph.source, labels)
    if fmt == "dot":
        return source
    if shutil.which("dot") is None:
        raise GraphvizMissing(
            "Graphviz's `dot` program is not installed: apt-get install graphviz "
            "(or brew install graphviz); Mermaid output needs nothing"
        )
    return graphviz.Source(source).pipe(format=fmt)


def _labels(table: MachineTable, args: dict[str, Any]) -> dict[str, str]:
    """Exchange state -> `COMMAND ⇒ /reply/`, with the component's arguments filled in."""
    labels = {}
    for state, exchange in table.get("exchanges", {}).items():
        command = exchange["command"]
        # `{value}` of a set stays as written: it is no argument of the component.
        with contextlib.suppress(KeyError, IndexError, ValueError):
            command = command.format_map(_Keep(args)) if args else command
        reply = exchange.get("reply")
        labels[state] = f"{command} ⇒ {reply}" if reply else command
    return labels


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _label_mermaid(text: str, labels: dict[str, str]) -> str:
    def labelled(found: re.Match) -> str:
        name, ident = found.group(1), found.group(2)
        label = labels.get(name)
        if label is None:
            return found.group(0)
        # Mermaid ends a description at a double quote: write it as its entity.
        safe = label.replace('"', "#quot;")
        return f'{found.group(0)[: found.start(1) - found.start(0) - 1]}"{name}: {safe}" as {ident}'

    return re.sub(r'state "([^"]+)" as (\S+)$', labelled, text, flags=re.M)


def _label_dot(source: str, labels: dict[str, str]) -> str:
    def labelled(found: re.Match) -> str:
        name = found.group(1)
        label = labels.get(name)
        if label is None:
            return found.group(0)
        safe = label.replace("\\", "\\\\").replace('"', '\\"')
        return f'{found.group(0)[:-1]}{safe}\\l"'

    return re.sub(r'label="(?:[^"]*\.)?([^".\\]+)\\l"', labelled, source)
