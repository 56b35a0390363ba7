"""Draw a component's state machine: Mermaid text always, dot/svg/png through Graphviz."""

from __future__ import annotations

import shutil

from pyiot.compiler.machine import build_graph_machine
from pyiot.compiler.tables import MachineTable

FORMATS = ("mermaid", "dot", "svg", "png")


class GraphvizMissing(RuntimeError):
    """Graphviz (the `dot` program or the `graphviz` Python package) is not installed."""


def render(
    table: MachineTable,
    title: str,
    fmt: str = "mermaid",
    modes: MachineTable | None = None,
    fold_protocol: bool = False,
) -> str | bytes:
    """The machine as Mermaid `stateDiagram-v2` text, dot source, or SVG/PNG bytes."""
    if fmt == "mermaid":
        machine = build_graph_machine(title, "mermaid", table, modes, fold_protocol)
        return machine.get_graph().draw(None)
    try:
        import graphviz  # noqa: F401  (transitions' graphviz engine imports it)
    except ImportError:
        raise GraphvizMissing(
            "the graphviz Python package is missing (a dependency of pyiot): pip install graphviz"
        ) from None
    graph = build_graph_machine(title, "graphviz", table, modes, fold_protocol).get_graph()
    if fmt == "dot":
        return graph.source
    if shutil.which("dot") is None:
        raise GraphvizMissing(
            "Graphviz's `dot` program is not installed: apt-get install graphviz "
            "(or brew install graphviz); Mermaid output needs nothing"
        )
    return graph.pipe(format=fmt)
