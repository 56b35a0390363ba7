"""Typed body statements (pyiot/lang/statements.py): each kind fills a field the model has, and a
statement or declaration given twice is a positioned diagnostic that lets the rest of the file
be checked, not an abort."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pyiot.lang import IotError, load, load_file
from pyiot.lang.model import Device, Property
from pyiot.lang.statements import KINDS, hook


def test_every_statement_kind_fills_a_field_the_model_has():
    fields = {
        Device: {f.name for f in dataclasses.fields(Device)},
        Property: {f.name for f in dataclasses.fields(Property)},
    }
    assert len(KINDS) >= 35
    for kind in KINDS:
        assert kind.device or kind.prop, kind
        for target, attribute in ((Device, kind.device), (Property, kind.prop)):
            assert attribute is None or attribute in fields[target], (kind, target)
    assert hook("decode").key(Property("p", None, None)) == "python:decode"  # type: ignore[arg-type]


def test_duplicates_are_diagnostics_and_the_rest_is_still_checked(bad_dir: Path):
    path = bad_dir / "duplicates_and_more.iot"
    with pytest.raises(IotError) as caught:
        load_file(path)
    err = caught.value
    found = [(d.pos.line, d.pos.column, d.message) for d in err.diagnostics]
    assert found == [
        (8, 17, "'timeout' is given twice in property 'volume' (first at line 7)"),
        (10, 14, "property 'volume' is declared twice (first at line 4)"),
        (17, 15, "component 'amp1' is declared twice (first at line 16)"),
        # Checked although the file has duplicates above: the first of each stays.
        (18, 22, "unknown device 'Tunr' (known: Amp)"),
    ]
    rendered = err.render().splitlines()
    assert rendered[0] == f"{path}:8:17: error: " + found[0][2]
    assert rendered[1:3] == ["            timeout 1s", " " * 20 + "^"]


def test_the_first_of_a_duplicate_stays_in_the_model():
    source = """device Relay {
    timeout 500ms
    ack /^OK$/
    ack /^DONE$/
}
"""
    with pytest.raises(IotError) as caught:
        load(source, "relay.iot")
    assert [(d.pos.line, d.message) for d in caught.value.diagnostics] == [
        (4, "'ack' is given twice in device 'Relay' (first at line 3)")
    ]
