"""pyiot.lang.values: what a shadow's desired value may be, and how values meet wire text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyiot.lang import load
from pyiot.lang.model import ValueType
from pyiot.lang.values import BadValue, coerce, decode, encode, render_value

MODEL = load(
    r"""
device D {
    property relay: bool {
        query "R?" reply /^R(?P<value>ON|OFF)$/ set "R{value}" map { ON = true, OFF = false }
    }
    property level: int 0..10 { query "L?" reply /^L(?P<value>-?\d+)$/ set "L{value}" }
    property gain: float -6..6 { query "G?" reply /^G(?P<value>.+)$/ }
    property label: string { query "N?" reply /^N(?P<value>.*)$/ }
    property input: int { set "I{value}" map { TV = 1, DVD = 2, OFF = 0 } }
    property mode: string { set "M{value}" map { "0" = "eco", "1" = "normal" } }
}
"""
)
PROPS = MODEL.devices["D"].properties


# ---------------------------------------------------------------------------------- coerce
def test_false_and_zero_are_values_not_absences():
    assert coerce(ValueType("bool"), False) is False
    assert coerce(ValueType("int", 0, 10), 0) == 0
    assert coerce(ValueType("float"), 0.0) == 0.0
    assert coerce(ValueType("string"), "") == ""


def test_bools_are_not_numbers_and_numbers_are_not_bools():
    with pytest.raises(BadValue, match="expected a number"):
        coerce(ValueType("int"), True)
    with pytest.raises(BadValue, match="expected a number"):
        coerce(ValueType("float"), False)
    with pytest.raises(BadValue, match="expected true or false"):
        coerce(ValueType("bool"), 1)
    with pytest.raises(BadValue, match="expected true or false"):
        coerce(ValueType("bool"), "true")


def test_int_accepts_whole_floats_and_rejects_fractions():
    value = coerce(ValueType("int"), 3.0)
    assert value == 3 and type(value) is int
    with pytest.raises(BadValue, match="whole number"):
        coerce(ValueType("int"), 3.5)
    with pytest.raises(BadValue, match="expected a number"):
        coerce(ValueType("int"), "3")


def test_float_is_float():
    value = coerce(ValueType("float"), 2)
    assert value == 2.0 and type(value) is float


@pytest.mark.parametrize("value", [0, 5, 10, 10.0])
def test_range_bounds_are_inclusive(value):
    assert coerce(ValueType("int", 0, 10), value) == value


@pytest.mark.parametrize("value", [-1, 11, 10.5])
def test_outside_the_range_is_refused(value):
    with pytest.raises(BadValue):
        coerce(ValueType("int", 0, 10), value)


def test_range_message_names_the_range():
    with pytest.raises(BadValue, match=r"11 is outside 0\.\.10"):
        coerce(ValueType("int", 0, 10), 11)
    with pytest.raises(BadValue, match=r"-6\.5 is outside -6\.\.6"):
        coerce(ValueType("float", -6, 6), -6.5)


def test_strings_only_for_strings():
    with pytest.raises(BadValue, match="expected a string"):
        coerce(ValueType("string"), 5)
    with pytest.raises(BadValue, match="expected a string"):
        coerce(ValueType("string"), None)


def test_value_error_is_a_value_error():
    assert issubclass(BadValue, ValueError)


@given(st.integers(min_value=-1000, max_value=1000))
def test_int_range_property(value):
    value_type = ValueType("int", -10, 10)
    if -10 <= value <= 10:
        assert coerce(value_type, value) == value
    else:
        with pytest.raises(BadValue):
            coerce(value_type, value)


# ------------------------------------------------------------------------- decode / encode
def test_decode_through_a_map():
    assert decode(PROPS["relay"], "ON") is True
    assert decode(PROPS["relay"], "OFF") is False
    with pytest.raises(BadValue, match="no value maps from 'MAYBE'"):
        decode(PROPS["relay"], "MAYBE")


def test_decode_numbers_and_strings():
    assert decode(PROPS["level"], "7") == 7 and type(decode(PROPS["level"], "7")) is int
    assert decode(PROPS["level"], "-3") == -3
    assert decode(PROPS["gain"], "-1.25") == -1.25
    assert decode(PROPS["label"], "Living room") == "Living room"
    assert decode(PROPS["label"], "") == ""
    with pytest.raises(BadValue, match="is not a number"):
        decode(PROPS["level"], "seven")
    with pytest.raises(BadValue, match="is not a number"):
        decode(PROPS["gain"], "loud")


def test_encode_through_a_map():
    assert encode(PROPS["relay"], True) == "ON"
    assert encode(PROPS["relay"], False) == "OFF"
    assert encode(PROPS["input"], 2) == "DVD"
    assert encode(PROPS["input"], 0) == "OFF"
    assert encode(PROPS["mode"], "eco") == "0"
    assert encode(PROPS["input"], 5) == 5  # a number's map names some values; digits the rest
    assert decode(PROPS["input"], "5") == 5
    with pytest.raises(BadValue, match="no wire text maps to 'aux'"):
        encode(PROPS["mode"], "aux")


def test_encode_does_not_confuse_ints_and_bools():
    # 1 == True in Python; an int map must not answer a bool and vice versa.
    with pytest.raises(BadValue):
        encode(PROPS["input"], True)
    with pytest.raises(BadValue):
        encode(PROPS["relay"], 1)
    with pytest.raises(BadValue):
        encode(PROPS["input"], False)


def test_encode_without_map_passes_the_value_to_the_format():
    assert encode(PROPS["level"], 0) == 0
    assert PROPS["level"].set_format.format(value=encode(PROPS["level"], 0)) == "L0"


def test_encode_decode_round_trip_for_every_mapped_value():
    for prop in (PROPS["relay"], PROPS["input"], PROPS["mode"]):
        for wire, value in prop.value_map.items():
            assert encode(prop, value) == wire
            assert decode(prop, wire) == value


def test_render_value():
    assert render_value(True) == "true"
    assert render_value(False) == "false"
    assert render_value(0) == "0"
    assert render_value(2.5) == "2.5"
    assert render_value("on") == "on"
