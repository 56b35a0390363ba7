"""Every construct of grammar/iot.lark, parsed into the model."""

from __future__ import annotations

import pytest

from pyiot.lang import IotError, load
from pyiot.lang.model import Regex, ValueType

EVERYTHING = r"""
# A comment on its own line.
device Zone(zone: int, label: string, gain: float, loud: bool) "One zone of an amplifier" {
    transport serial {
        baud 19200 parity "E" stopbits 1 rtscts false xonxoff true pause 20ms bits -7 mode fast
    }
    framing line "\r\n"      # a comment after a statement
    timeout 1.5s
    retries 0
    poll every 2m
    error /^err(or)?$/i

    property power: bool {
        query "?{zone}PR"
        reply /^>{1}PR(?P<value>0[01])$/
        set "<{zone}PR{value}"
        map { "01" = true, "00" = false, }
        poll every 250ms
        timeout 100ms
    }
    property volume: int 0..38 {
        set "<{zone}VO{value:02d}"
    }
    property balance: int -10..10
    property treble: float -1.5..2.5
    property gainDb: float
    property count: int
    property name: string {
        query "NAME?"
        reply /^NAME=(?P<value>.*)$/ms
    }
    property input: string {
        set "SI{value}"
        map { TV = "tv", 2 = "dvd", -1 = "none", "CD 1" = "cd" }
    }
    property delay: float { map { short = 0.5, long = 1h } }
}

device Receiver {
    transport tcp
    timeout 2h
}

device Bare {}

thing house {
    component kitchen: Zone(zone = 11, label = "Kitchen", gain = -2.5, loud = true)
        on serial "/dev/ttyUSB0"
    component avr: Receiver on tcp "192.168.1.20:23"
}

thing cottage {
    component den: Zone(zone=12,label="Den",gain=0,loud=false) on serial "socket://127.0.0.1:7000"
}

thing empty {}
"""


@pytest.fixture(scope="module")
def model():
    # `load` parses and checks: everything here is valid.
    return load(EVERYTHING, "everything.iot")


def test_device_header(model):
    zone = model.devices["Zone"]
    assert zone.description == "One zone of an amplifier"
    assert [(p.name, p.type) for p in zone.params] == [
        ("zone", ValueType("int")),
        ("label", ValueType("string")),
        ("gain", ValueType("float")),
        ("loud", ValueType("bool")),
    ]
    assert [p.pos.column for p in zone.params] == [13, 24, 39, 52]


def test_transport_settings_take_every_literal(model):
    transport = model.devices["Zone"].transport
    assert transport.kind == "serial"
    assert transport.settings == {
        "baud": 19200,
        "parity": "E",
        "stopbits": 1,
        "rtscts": False,
        "xonxoff": True,
        "pause": pytest.approx(0.02),
        "bits": -7,
        "mode": "fast",
    }
    assert type(transport.settings["baud"]) is int
    assert type(transport.settings["rtscts"]) is bool
    assert model.devices["Receiver"].transport.kind == "tcp"
    assert model.devices["Receiver"].transport.settings == {}


def test_device_timing_and_framing(model):
    zone = model.devices["Zone"]
    assert zone.line_terminator == "\r\n"
    assert zone.timeout == 1.5
    assert zone.retries == 0
    assert zone.poll_every == 120.0
    assert zone.error_reply == Regex("^err(or)?$", "i")
    assert zone.error_reply.compile().fullmatch("ERROR")
    assert model.devices["Receiver"].timeout == 7200.0


def test_defaults_of_a_bare_device(model):
    bare = model.devices["Bare"]
    assert bare.description == ""
    assert bare.transport.kind == "serial"
    assert bare.line_terminator == "\n"
    assert bare.timeout == 1.0
    assert bare.retries == 2
    assert bare.poll_every is None
    assert bare.error_reply is None
    assert bare.properties == {}


def test_property_statements(model):
    power = model.devices["Zone"].properties["power"]
    assert power.type == ValueType("bool")
    assert power.query == "?{zone}PR"
    assert power.reply == Regex(r"^>{1}PR(?P<value>0[01])$", "")
    assert power.set_format == "<{zone}PR{value}"
    assert power.value_map == {"01": True, "00": False}  # trailing comma allowed
    assert power.poll_every == 0.25
    assert power.timeout == 0.1


def test_types_and_ranges(model):
    props = model.devices["Zone"].properties
    assert props["volume"].type == ValueType("int", 0, 38)
    assert props["balance"].type == ValueType("int", -10, 10)
    assert props["treble"].type == ValueType("float", -1.5, 2.5)
    assert props["gainDb"].type == ValueType("float")
    assert props["count"].type == ValueType("int")
    assert props["name"].type == ValueType("string")
    assert props["volume"].type.describe() == "int 0..38"
    assert props["treble"].type.describe() == "float -1.5..2.5"
    assert props["count"].type.describe() == "int"
    # A property without a body has no commands.
    assert not props["balance"].readable and not props["balance"].writable


def test_regex_flags_and_multiline_flags(model):
    name = model.devices["Zone"].properties["name"]
    assert name.reply == Regex("^NAME=(?P<value>.*)$", "ms")
    assert name.reply.compile().search("x\nNAME=a\nb").group("value") == "a\nb"


def test_map_keys_of_every_kind(model):
    props = model.devices["Zone"].properties
    # Keys are wire text whatever their spelling: names, numbers, negative numbers, strings.
    assert props["input"].value_map == {"TV": "tv", "2": "dvd", "-1": "none", "CD 1": "cd"}
    assert props["delay"].value_map == {"short": 0.5, "long": 3600.0}


def test_things_and_components(model):
    house = model.things["house"]
    assert list(house.components) == ["kitchen", "avr"]
    kitchen = house.components["kitchen"]
    assert kitchen.device == "Zone"
    assert kitchen.args == {"zone": 11, "label": "Kitchen", "gain": -2.5, "loud": True}
    assert (kitchen.endpoint_kind, kitchen.endpoint) == ("serial", "/dev/ttyUSB0")
    den = model.things["cottage"].components["den"]
    assert den.args == {"zone": 12, "label": "Den", "gain": 0, "loud": False}
    assert den.endpoint == "socket://127.0.0.1:7000"
    avr = house.components["avr"]
    assert avr.args == {}
    assert (avr.endpoint_kind, avr.endpoint) == ("tcp", "192.168.1.20:23")
    assert model.things["empty"].components == {}


def test_empty_file_and_comments_only():
    assert load("").devices == {} and load("").things == {}
    assert load("# nothing here\n   \n# at all").devices == {}


def test_escaped_slash_in_regex_and_escapes_in_strings():
    model = load(
        'device D { error /^a\\/b$/ framing line "\\r" property p: string '
        '{ query "Q\\"\\t" reply /^(?P<value>.*)$/ } }'
    )
    device = model.devices["D"]
    assert device.error_reply.source == "^a/b$"
    assert device.error_reply.compile().fullmatch("a/b")
    assert device.line_terminator == "\r"
    assert device.properties["p"].query == 'Q"\t'


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("5s", 5.0), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0), ("0.25h", 900.0)],
)
def test_durations(text, seconds):
    assert load(f"device D {{ timeout {text} }}").devices["D"].timeout == pytest.approx(seconds)


def test_duration_must_not_run_into_letters():
    with pytest.raises(IotError) as caught:
        load("device D { timeout 5sx }")
    assert caught.value.line == 1


def test_name_literal_starting_with_true_or_false():
    model = load("device D { transport serial { a trueish b falseStart } }")
    assert model.devices["D"].transport.settings == {"a": "trueish", "b": "falseStart"}


def test_property_name_starting_with_keyword():
    model = load("device D { property trueState: int property falseCount: int }")
    assert list(model.devices["D"].properties) == ["trueState", "falseCount"]
