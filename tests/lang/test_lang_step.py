"""`step`: a value off the declared steps is rejected with the two nearest allowed, never rounded.

`float 16..30 step 0.5` used to be parsed and ignored: 21.3 went out as `SP 21.3`.
"""

from __future__ import annotations

import pytest

from pyiot.lang import IotError, load
from pyiot.lang.model import Property, ValueType
from pyiot.lang.values import BadValue, coerce, decode
from pyiot.sim import DeviceSimulator

THERMOSTAT = r"""
device Thermostat {
    error /^ERR$/
    property setpoint: float 16..30 step 0.5 {
        query "SP?"
        reply /^SP (?P<value>\d+(\.\d+)?)$/
        set "SP {value}"
    }
    property fan: int 0..100 step 5 hex {
        query "FAN?"
        reply /^FAN (?P<value>[0-9A-F]+)$/
        set "FAN {value:02X}"
    }
    property offset: float step 0.1 { set "OFS {value}" }
}
"""


@pytest.fixture(scope="module")
def props() -> dict[str, Property]:
    return load(THERMOSTAT).devices["Thermostat"].properties


def test_step_is_parsed_for_int_and_float(props) -> None:
    assert props["setpoint"].type == ValueType("float", 16, 30, 0.5)
    assert props["fan"].type.step == 5 and props["fan"].type.base == 16
    assert props["offset"].type.describe() == "float step 0.1"
    assert props["setpoint"].type.describe() == "float 16..30 step 0.5"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("setpoint", 21.5),
        ("setpoint", 16),
        ("setpoint", 30.0),
        ("fan", 0),
        ("fan", 100),
        ("fan", 35.0),
        # Binary floating point: 0.1 * 3 is 0.30000000000000004, still three steps.
        ("offset", 0.1 * 3),
        ("offset", -2.7),
        ("offset", 123.4),
    ],
)
def test_values_on_the_steps_pass_unchanged(props, name: str, value: float) -> None:
    assert coerce(props[name].type, value) == value


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("setpoint", 21.3, "21.3 is between steps of 0.5 from 16; nearest allowed: 21 or 21.5"),
        ("setpoint", 29.9, "nearest allowed: 29.5 or 30"),
        ("fan", 7, "7 is between steps of 5 from 0; nearest allowed: 5 or 10"),
        ("offset", 0.35, "nearest allowed: 0.3 or 0.4"),
        ("offset", -0.05, "nearest allowed: -0.1 or 0"),
    ],
)
def test_values_off_the_steps_are_rejected_with_the_nearest(
    props, name: str, value: float, message: str
) -> None:
    with pytest.raises(BadValue) as rejected:
        coerce(props[name].type, value)
    assert message in str(rejected.value)


def test_a_neighbour_past_the_range_is_not_offered() -> None:
    # 0..10 step 3 allows 0, 3, 6, 9: for 9.5, 12 is outside, so only 9 is named.
    with pytest.raises(BadValue, match=r"nearest allowed: 9$"):
        coerce(ValueType("float", 0, 10, 3), 9.5)


def test_out_of_range_is_reported_before_the_step() -> None:
    with pytest.raises(BadValue, match="outside 16..30"):
        coerce(ValueType("float", 16, 30, 0.5), 30.3)


def test_what_a_device_reports_is_taken_as_it_is(props) -> None:
    # The device is the truth about its own state: an off-step report is not refused.
    assert decode(props["setpoint"], "21.3") == 21.3
    assert decode(props["setpoint"], "21.3", {"decode": float}) == 21.3


def test_the_simulator_starts_on_a_step_and_refuses_a_set_between_steps(props) -> None:
    device = load(THERMOSTAT).devices["Thermostat"]
    sim = DeviceSimulator("t1", device)
    assert sim.values["setpoint"] == 16.0 and sim.values["fan"] == 0
    assert sim.answer("SP 21.5") == ["SP 21.5"]
    assert sim.values["setpoint"] == 21.5
    assert sim.answer("SP 21.3") == ["ERR"]
    assert sim.values["setpoint"] == 21.5
    with pytest.raises(BadValue, match="21 or 21.5"):
        sim.change("setpoint", 21.2)


def test_a_value_compared_for_equality_in_the_file_must_be_on_the_steps() -> None:
    def with_condition(condition: str) -> str:
        return THERMOSTAT.replace('set "SP {value}"', f'set "SP {{value}}" poll every 5s when {condition}')

    with pytest.raises(IotError, match="nearest allowed: 20.5 or 21"):
        load(with_condition("setpoint == 20.7"))
    # A threshold need not be on a step.
    load(with_condition("setpoint > 20.7"))
