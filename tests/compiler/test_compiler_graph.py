"""`pyiot graph`: the drawing is the machine that runs (Mermaid always, dot/SVG with Graphviz)."""

from __future__ import annotations

import re
import shutil

import pytest

from pyiot.compiler import Program
from pyiot.compiler.graph import render


def _table_edges(table) -> set[tuple[str, str, str]]:
    edges = set()
    for t in table["transitions"]:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        edges |= {(s, t["dest"], t["trigger"]) for s in sources}
    return edges


def _mermaid_edges(text: str) -> set[tuple[str, str, str]]:
    edges = set()
    for source, dest, label in re.findall(r"^\s*([\w-]+) --> ([\w-]+): (.+)$", text, re.M):
        edges |= {(source, dest, re.sub(r" \[.*\]$", "", t.strip())) for t in label.split("|")}
    return edges


def test_mermaid_is_a_state_diagram_of_the_relay(relay_program: Program):
    text = render(relay_program.machines["Relay"], "Relay")
    assert isinstance(text, str)
    assert "stateDiagram-v2" in text
    assert "Relay" in text.split("stateDiagram-v2")[0]  # the title
    for state in ["offline", "connecting", "idle", "retry-query-relayState"]:
        assert re.search(rf'^\s*state "{state}" as {state}$', text, re.M), state
    # Each exchange is labelled with its command and the reply it waits for.
    assert 'state "query-relayState: RELAY? ⇒ /^RELAY(?P<value>ON|OFF)$/" as query-relayState' in text
    assert re.search(r"^\s*\[\*\] --> offline$", text, re.M)
    for trigger in [
        "connect",
        "connected",
        "poll-relayState",
        "write-relayState",
        "reply",
        "error_reply",
        r"expire \[retries_left\]",
        r"expire \[!retries_left\]",
        "resend",
        "link_lost",
        "connect_failed",
    ]:
        assert re.search(rf"\b{trigger}", text), trigger


def test_mermaid_draws_every_transition_of_the_table(relay_program: Program):
    table = relay_program.machines["Relay"]
    text = render(table, "Relay", "mermaid")
    assert _mermaid_edges(text) == _table_edges(table)
    # Spot checks independent of the table: the machine a user reasons about.
    assert ("idle", "query-relayState", "poll-relayState") in _mermaid_edges(text)
    assert ("query-relayState", "retry-query-relayState", "expire") in _mermaid_edges(text)


def test_drawing_does_not_change_the_table(relay_program: Program):
    table = relay_program.machines["Relay"]
    before = repr(table)
    render(table, "Relay")
    assert repr(table) == before
    assert any("timeout" in s for s in table["states"])


def _need_graphviz() -> None:
    pytest.importorskip("graphviz")


def test_dot_source(relay_program: Program):
    _need_graphviz()
    table = relay_program.machines["Relay"]
    dot = render(table, "Relay", "dot")
    assert isinstance(dot, str)
    assert dot.lstrip().startswith("digraph")
    for state in ["offline", "connecting", "idle", '"query-relayState"', '"retry-query-relayState"']:
        assert re.search(rf"^\s*{state} \[", dot, re.M), state
    assert "RELAY? ⇒ /^RELAY(?P<value>ON|OFF)$/" in dot
    edges = set()
    for source, dest, quoted, bare in re.findall(
        r'^\s*"?([\w-]+)"? -> "?([\w-]+)"? \[label=(?:"([^"]+)"|([^\]]+))\]', dot, re.M
    ):
        label = quoted or bare
        edges |= {(source, dest, re.sub(r" \[.*\]$", "", t.strip())) for t in label.split("|")}
    assert edges == _table_edges(table)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_svg_and_png(relay_program: Program):
    _need_graphviz()
    table = relay_program.machines["Relay"]
    svg = render(table, "Relay", "svg")
    assert isinstance(svg, bytes)
    assert b"<svg" in svg and b"RELAY?" in svg  # the exchange's label
    png = render(table, "Relay", "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
