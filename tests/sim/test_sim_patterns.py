"""Rendering reply regexes into text the device sends, and set formats into regexes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyiot.sim.patterns import format_to_regex, render


@pytest.mark.parametrize(
    ("pattern", "groups", "expected"),
    [
        (r"^RELAY(?P<value>ON|OFF)$", {"value": "ON"}, "RELAYON"),
        (r"^RELAY(?P<value>ON|OFF)$", {"value": "OFF"}, "RELAYOFF"),
        (r"^PWR=(?P<value>\d\d)$", {"value": "01"}, "PWR=01"),
        (r"^ERR$", {}, "ERR"),
        (r"^(?:OK|DONE)$", {}, "OK"),  # alternation: the first branch
        # Alternatives sharing a prefix are parsed as PO[NF]: still the first one, PON.
        (r"^(?:PON|POF)$", {}, "PON"),
        (r"^(?:ERR3|ERR2)$", {}, "ERR3"),
        (r"^MV(?P<value>-?\d+)$", {"value": "-35"}, "MV-35"),
        (r">(?P<zone>\d\d)(?P<power>\d\d)", {"zone": "11", "power": "01"}, ">1101"),
        (r"^VOL (?P<value>\d+)dB$", {"value": "12"}, "VOL 12dB"),
    ],
)
def test_render_exact(pattern, groups, expected):
    assert render(re.compile(pattern), groups) == expected


@pytest.mark.parametrize(
    "pattern",
    [
        r"^ERR\d$",
        r"[A-F0-9]{4}",  # class with a repeat count
        r"x+y*z?",  # repeats: at least the minimum
        r"(?:ab){2,3}!",
        r"a+?b",  # lazy repeat
        r"\w\s\S\D\W",
        r"^.$",
        r"[^abc]",  # negated class
        r"[^a-z0-9]",
        r"[^a]",  # a one-character negated class
        r"(?i)^hello$",
        r"^(?P<a>\d)(?P<b>[A-Z])$",  # named groups left to the pattern
        r"(\w)\1",  # a backreference
        r"(?P<q>[\"'])x(?P=q)",
        r"\bword\b",
        r"(?=a)a",
        r"^(?:(?:a|bc)|d)+$",
        r"^a\.b\*c$",
    ],
)
def test_render_matches_the_pattern(pattern):
    compiled = re.compile(pattern)
    assert compiled.fullmatch(render(compiled, {})), render(compiled, {})


def test_render_is_shortest_for_optional_parts():
    assert render(re.compile(r"^A(?:BC)?D*E{2,}$"), {}) == "AEE"


def test_render_refuses_a_value_the_pattern_cannot_carry():
    with pytest.raises(ValueError, match="cannot write a reply"):
        render(re.compile(r"^L(?P<value>\d+)$"), {"value": "ten"})


@given(st.integers(min_value=0, max_value=10**6))
def test_render_numbers_into_a_numeric_group(number):
    pattern = re.compile(r"^>(?P<zone>\d\d)VO(?P<value>\d+)$")
    text = render(pattern, {"zone": "11", "value": str(number)})
    found = pattern.fullmatch(text)
    assert found is not None
    assert found.group("value") == str(number) and found.group("zone") == "11"


def test_format_to_regex_recognises_what_format_writes():
    fields = {"zone": re.escape("11"), "value": r"\d+"}
    fmt = "<{zone}VO{value:02d}"
    regex = format_to_regex(fmt, fields)
    command = fmt.format(zone=11, value=5)
    found = regex.fullmatch(command)
    assert found is not None
    assert found.group("value") == "05" and found.group("zone") == "11"
    assert regex.fullmatch("<12VO05") is None
    assert regex.fullmatch("<11VOxx") is None


def test_format_to_regex_escapes_literal_text():
    regex = format_to_regex("SET?(x)*{value}.", {"value": "ON|OFF"})
    assert regex.fullmatch("SET?(x)*ON.")
    assert regex.fullmatch("SET?(x)*OFF.")
    assert regex.fullmatch("SETx*ON.") is None


def test_format_to_regex_field_without_a_pattern_takes_any_text():
    regex = format_to_regex("NAME {value}!", {})
    assert regex.fullmatch("NAME living room!").group("value") == "living room"
    assert regex.fullmatch("NAME !") is None


def test_format_to_regex_literal_braces():
    regex = format_to_regex("{{{value}}}", {"value": r"\d"})
    assert regex.fullmatch("{7}").group("value") == "7"
