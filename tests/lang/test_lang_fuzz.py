"""Mutated device files never crash the language layer: a model, or an IotError inside the file."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyiot.lang import IotError, load

RELAY = (Path(__file__).resolve().parents[2] / "devices" / "relay.iot").read_text(encoding="utf-8")

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:\\.|[^"\\\n])*"|/(?:\\.|[^/\\\n])+/[imsx]*|\w+|.', re.S)
TOKENS = _TOKEN.findall(RELAY)
assert "".join(TOKENS) == RELAY

# Things a user might type in the wrong place, beside the file's own tokens.
EXTRA_TOKENS = [
    "device",
    "thing",
    "component",
    "property",
    "transport",
    "framing",
    "line",
    "timeout",
    "retries",
    "poll",
    "every",
    "error",
    "query",
    "reply",
    "set",
    "map",
    "on",
    "serial",
    "tcp",
    "bool",
    "int",
    "float",
    "string",
    "true",
    "false",
    "0ms",
    "5s",
    "1..0",
    "-",
    "..",
    "0..10",
    "(zone: int)",
    "(zone = 1)",
    '"{zone}"',
    '"{"',
    '"}"',
    '"\\x"',
    '"\\N{x}"',
    '"\\u12"',
    "/(/",
    "/[/",
    "/(?P<value>x)/",
    "/(?P<value>/",
    "/x/q",
    "{value}",
    "pyiot",
    "Relay",
    "relay1",
    "relayOne",
    "\n",
    "\t",
    "\r\n",
    "\f",
    "{",
    "}",
    "(",
    ")",
    ":",
    ",",
    "=",
    "#",
]
CHARS = st.sampled_from(list('{}()[]:,=./\\"#-?<>*+|^$ \t\n\r\f0123456789aZ_éλ\x00'))


@st.composite
def mutated(draw) -> str:
    tokens = list(TOKENS)
    pool = TOKENS + EXTRA_TOKENS
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["delete", "insert", "replace"]))
        index = draw(st.integers(0, len(tokens) - 1))
        if op == "delete":
            del tokens[index]
        elif op == "insert":
            tokens.insert(index, draw(st.sampled_from(pool)))
        else:
            tokens[index] = draw(st.sampled_from(pool))
    text = "".join(tokens)
    for _ in range(draw(st.integers(0 if tokens != TOKENS else 1, 3))):
        op = draw(st.sampled_from(["delete", "insert", "replace"]))
        index = draw(st.integers(0, max(len(text) - 1, 0)))
        if op == "delete":
            text = text[:index] + text[index + 1 :]
        elif op == "insert":
            text = text[:index] + draw(CHARS) + text[index:]
        else:
            text = text[:index] + draw(CHARS) + text[index + 1 :]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_relay_file_parses_or_reports_a_position_inside_it(source):
    try:
        model = load(source, "mutant.iot")
    except IotError as err:
        assert err.diagnostics, "an IotError carries at least one diagnostic"
        lines = source.split("\n")
        for diagnostic in err.diagnostics:
            pos = diagnostic.pos
            assert pos.file == "mutant.iot"
            assert 1 <= pos.line <= len(lines), (pos, err.render())
            assert 1 <= pos.column <= len(lines[pos.line - 1]) + 1, (pos, err.render())
            assert diagnostic.message
        # Rendering never fails and shows the caret line for each diagnostic.
        assert err.render().count("^") >= len(err.diagnostics)
    else:
        assert model.path == "mutant.iot"
