"""What a simulated device holds before anyone sets it: the file's `initial`, else a sensible value."""

from __future__ import annotations

import pytest

from pyiot.lang import IotError, load
from pyiot.sim import simulator_for

DEVICE = """
device Box {
    property temperature: float -40..120 { query "T?" reply /^TEMP=(?P<value>-?\\d+\\.\\d)$/ }
    property source: int 1..6 { query "S?" reply /^S(?P<value>\\d)$/ }
    property model: string { query "M?" reply /^M(?P<value>.+)$/ }
    property serial: string { query "N?" reply /^N(?P<value>\\d{4})$/ }
    property name: string { query "ID?" reply /^ID(?P<value>.+)$/ initial "AVM 60" }
    property setpoint: float 16..30 step 0.5 { query "SP?" reply /^SP(?P<value>\\d+\\.\\d)$/ initial 21.5 }
}
"""


def box():
    return simulator_for(load(DEVICE, "box.iot")).sims["Box"]


def test_numbers_start_at_zero_or_the_end_nearest_to_it():
    sim = box()
    assert sim.answer("T?") == ["TEMP=0.0"]  # not -40.0, the range's bottom
    assert sim.answer("S?") == ["S1"]


def test_a_declared_initial_value_is_held_and_reported():
    sim = box()
    assert sim.answer("ID?") == ["IDAVM 60"]
    assert sim.answer("SP?") == ["SP21.5"]


def test_a_text_starts_as_the_propertys_name_where_the_pattern_takes_it():
    sim = box()
    assert sim.answer("M?") == ["Mmodel"]  # not "Mx", the shortest text `.+` accepts
    assert sim.answer("N?") == ["N0000"]


def test_an_initial_value_off_the_type_is_an_error_at_it():
    bad = DEVICE.replace("initial 21.5", "initial 21.3")
    with pytest.raises(IotError) as err:
        load(bad, "box.iot")
    assert "box.iot:8:" in str(err.value) and "between steps" in str(err.value)
