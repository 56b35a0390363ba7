"""devices/relay.iot parses to the model the runtime, compiler and simulator rely on."""

from __future__ import annotations

from pyiot.lang import IotFile, load_file
from pyiot.lang.model import Regex, ValueType


def test_relay_device_settings(relay_path):
    model = load_file(relay_path)
    assert list(model.devices) == ["Relay"]
    relay = model.devices["Relay"]
    assert relay.name == "Relay"
    assert relay.description == "Single-channel serial relay"
    assert relay.params == []
    assert relay.transport.kind == "serial"
    assert relay.transport.settings == {"baud": 9600}
    assert relay.line_terminator == "\n"
    assert relay.timeout == 0.5
    assert relay.retries == 2
    assert relay.poll_every == 5.0
    assert relay.error_reply == Regex("^ERR$", "")


def test_relay_property(relay_path):
    relay = load_file(relay_path).devices["Relay"]
    assert list(relay.properties) == ["relayState"]
    prop = relay.properties["relayState"]
    assert prop.type == ValueType("bool")
    assert prop.query == "RELAY?"
    assert prop.reply == Regex("^RELAY(?P<value>ON|OFF)$", "")
    assert prop.set_format == "RELAY{value}"
    assert prop.value_map == {"ON": True, "OFF": False}
    # A bool map holds real bools, not the ints 1 and 0.
    assert all(type(v) is bool for v in prop.value_map.values())
    assert prop.readable and prop.writable
    assert prop.poll_every is None and prop.timeout is None
    assert prop.reply.compile().fullmatch("RELAYON").group("value") == "ON"


def test_relay_thing(relay_path):
    model = load_file(relay_path)
    assert list(model.things) == ["relayOne"]
    thing = model.things["relayOne"]
    assert list(thing.components) == ["relay1"]
    comp = thing.components["relay1"]
    assert comp.device == "Relay"
    assert comp.args == {}
    assert comp.endpoint_kind == "serial"
    assert comp.endpoint == "/dev/ttyUSB0"


def test_relay_positions_point_at_the_source(relay_path, relay_source):
    """Every recorded position names the file and lands on the text it describes."""
    model = load_file(relay_path)
    lines = relay_source.splitlines()

    def text_at(pos, length):
        assert pos.file == str(relay_path)
        return lines[pos.line - 1][pos.column - 1 : pos.column - 1 + length]

    relay = model.devices["Relay"]
    assert (relay.pos.line, relay.pos.column) == (7, 8)
    assert text_at(relay.pos, 5) == "Relay"
    assert text_at(relay.positions["timeout"], 5) == "500ms"
    assert text_at(relay.positions["retries"], 1) == "2"
    assert text_at(relay.positions["poll_every"], 2) == "5s"
    assert text_at(relay.positions["error_reply"], 7) == "/^ERR$/"
    assert text_at(relay.positions["line_terminator"], 4) == '"\\n"'
    assert text_at(relay.positions["transport"], 6) == "serial"
    prop = relay.properties["relayState"]
    assert (prop.pos.line, prop.pos.column) == (15, 14)
    assert text_at(prop.pos, 10) == "relayState"
    assert text_at(prop.positions["query"], 8) == '"RELAY?"'
    assert text_at(prop.positions["reply"], 6) == "/^RELA"
    assert text_at(prop.positions["set_format"], 6) == '"RELAY'
    assert text_at(prop.positions["value_map"], 3) == "map"
    comp = model.things["relayOne"].components["relay1"]
    assert text_at(comp.pos, 6) == "relay1"
    assert text_at(comp.positions["device"], 5) == "Relay"
    assert text_at(comp.positions["endpoint"], 14) == '"/dev/ttyUSB0"'
    assert text_at(model.things["relayOne"].pos, 8) == "relayOne"


def test_model_round_trips_through_plain_data(relay_path):
    model = load_file(relay_path)
    data = model.to_data()
    rebuilt = IotFile.from_data(data)
    assert rebuilt == model
    assert rebuilt.to_data() == data
