"""Bad files in tests/lang/bad/: each error has a line, a column and a message a user can act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyiot.lang import IotError, load, load_file

# file -> (line, column, fragments of the message). Columns are 1-based, like an editor's.
BAD = {
    "unknown_device.iot": (10, 23, ["unknown device 'Rleay'", "known: Relay"]),
    "duplicate_property.iot": (9, 14, ["property 'volume' is declared twice"]),
    "missing_value_group.iot": (5, 15, ["no group named 'value'", "(?P<value>...)"]),
    # The column is that of the unclosed "(" inside the regex, not of the regex.
    "bad_regex.iot": (4, 21, ["bad regex", "missing )"]),
    # `\/` is two columns in the file but one character of the pattern.
    "bad_regex_escaped_slash.iot": (4, 32, ["bad regex", "unterminated character set"]),
    "unknown_format_field.iot": (3, 13, ["unknown field '{volume}'", "known: value, zone"]),
    "bool_without_map.iot": (2, 14, ["bool property 'relayState' needs a map", "ON = true"]),
    "unterminated_string.iot": (1, 14, ["unterminated string"]),
    "unterminated_regex.iot": (2, 11, ["unterminated /regex/"]),
    "unexpected_eof.iot": (3, 23, ["unexpected end of file", "'}'", "'reply'"]),
    "wrong_token.iot": (2, 13, ["unexpected '500'", "a duration such as 500ms"]),
    "unexpected_character.iot": (2, 14, ["unexpected character ';'"]),
    "missing_parameter.iot": (8, 24, ["missing parameter 'bus'", "device 'Zone'"]),
    "unknown_parameter.iot": (8, 24, ["device 'Zone' has no parameter 'zoen'"]),
    "bad_parameter_value.iot": (8, 24, ["parameter 'zone'", "expected a number", "'eleven'"]),
    "shadow_collision.iot": (
        9,
        15,
        ["shadow key 'volume' of patio.volume", "collides with kitchen.volume"],
    ),
    "duplicate_statement.iot": (4, 13, ["'timeout' is given twice in device 'Relay'"]),
    # Duplicates do not stop the checks: tests/lang/test_statements.py asserts the rest.
    "duplicates_and_more.iot": (8, 17, ["'timeout' is given twice in property 'volume'"]),
    "duplicate_device.iot": (4, 8, ["device 'Relay' is declared twice"]),
    "duplicate_component.iot": (6, 15, ["component 'relay1' is declared twice"]),
    "bad_string_escape.iot": (2, 18, ["bad string", "escape"]),
    "bad_query_format.iot": (3, 15, ["bad format string"]),
    "empty_range.iot": (2, 14, ["range 38..0 is empty"]),
    "tcp_with_baud.iot": (2, 15, ["tcp transport has no baud rate"]),
    "reserved_name.iot": (2, 14, ["'pyiot' is reserved"]),
    "map_value_type.iot": (4, 9, ["map entry DVD", "expected a number"]),
    "bool_map_one_sided.iot": (4, 9, ["must give both true and false"]),
    "query_without_reply.iot": (3, 15, ["has a query but no reply"]),
    "empty_terminator.iot": (2, 18, ["line terminator must not be empty"]),
    # Common slips: a type from another language, a tcp address without its port, a transport
    # pyiot does not have (every choice named, custom too).
    "unknown_type.iot": (2, 26, ["unknown type 'boolean'", "did you mean 'bool'?"]),
    "tcp_without_port.iot": (7, 41, ["HOST:PORT", "'127.0.0.1' has no port"]),
    "unknown_transport.iot": (2, 15, ["unknown transport 'telnet'", "serial, tcp or custom"]),
    # Absurd numbers and nesting: positioned errors, never a traceback or a broken driver.
    "duration_too_long.iot": (2, 13, ["longer than a week", "(401 characters)"]),
    "number_too_large.iot": (2, 29, ["too large", "2**53", "(4301 characters)"]),
    "nested_too_deep.iot": (4, 82, ["nested more than 60 levels deep"]),
    "regex_nested_too_deep.iot": (4, 117, ["regex groups nest more than 100 deep"]),
    "retries_too_many.iot": (2, 13, ["retries 1000000 is too many", "at most 100"]),
    "format_width_too_large.iot": (3, 13, ["width or precision above 1000"]),
    # Steps: an int moves in whole steps; a value in the file must be on the steps too.
    "int_step_not_whole.iot": (2, 37, ["an int moves in whole steps"]),
    "step_off_grid_value.iot": (6, 28, ["21.3 is between steps of 0.5", "21 or 21.5"]),
}


def test_every_bad_file_has_an_expectation(bad_dir: Path):
    on_disk = {p.name for p in bad_dir.glob("*.iot")} - {"several_errors.iot"}
    assert on_disk == set(BAD)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file(bad_dir: Path, name: str):
    line, column, fragments = BAD[name]
    path = bad_dir / name
    with pytest.raises(IotError) as caught:
        load_file(path)
    err = caught.value
    first = err.diagnostics[0]
    assert (err.line, err.column) == (line, column), err.render()
    assert first.pos.file == str(path)
    for fragment in fragments:
        assert fragment in first.message, err.render()
    # Render never fails and names the place: FILE:LINE:COL: error: ...
    assert err.render().startswith(f"{path}:{line}:{column}: error: ")


def test_several_errors_are_reported_in_one_run(bad_dir: Path):
    path = bad_dir / "several_errors.iot"
    with pytest.raises(IotError) as caught:
        load_file(path)
    found = [(d.pos.line, d.pos.column, d.message) for d in caught.value.diagnostics]
    expected = [
        (2, 13, "timeout must be above zero"),
        (3, 14, "needs a map"),
        (5, 15, "no group named 'value'"),
        (6, 15, "unknown field '{state}'"),
        (11, 23, "unknown device 'Relais'"),
    ]
    assert len(found) == len(expected), caught.value.render()
    for got, want in zip(found, expected, strict=True):
        assert got[:2] == want[:2]
        assert want[2] in got[2]
    rendered = caught.value.render()
    assert rendered.count(": error: ") == len(expected)
    # str() of the error is the first diagnostic, as a one-line summary.
    assert str(caught.value) == f"{path}:2:13: error: timeout must be above zero"


def test_end_of_file_after_trailing_newlines_points_past_the_last_text():
    with pytest.raises(IotError) as caught:
        load("device D {\n  retries 2\n")
    assert (caught.value.line, caught.value.column) == (2, 12)
    assert "unexpected end of file" in caught.value.diagnostics[0].message


def test_end_of_empty_device_header():
    with pytest.raises(IotError) as caught:
        load("device")
    assert (caught.value.line, caught.value.column) == (1, 7)
    assert "expected a name" in str(caught.value)


def test_wrong_keyword_names_the_token_and_the_choices():
    with pytest.raises(IotError) as caught:
        load("device D {\n    propery x: int\n}")
    err = caught.value
    assert (err.line, err.column) == (2, 5)
    message = err.diagnostics[0].message
    assert "unexpected name 'propery'" in message
    assert "'property'" in message and "'poll'" in message


def test_unknown_device_in_file_without_devices():
    with pytest.raises(IotError) as caught:
        load('thing t { component c: Relay on serial "/dev/ttyUSB0" }')
    assert "unknown device 'Relay' (known: none declared)" in str(caught.value)


def test_format_field_in_query_must_be_a_parameter():
    with pytest.raises(IotError) as caught:
        load('device D {\n property p: int { query "P{value}?" reply /P(?P<value>\\d+)/ } }')
    assert (caught.value.line, caught.value.column) == (2, 26)
    assert "unknown field '{value}'" in str(caught.value)
    # A parameter is fine in a query.
    load('device D(n: int) { property p: int { query "P{n}?" reply /P(?P<value>\\d+)/ } }')


def test_error_pattern_is_checked_too():
    with pytest.raises(IotError) as caught:
        load("device D {\n    error /ERR(/\n}")
    assert (caught.value.line, caught.value.column) == (2, 15)
    assert "bad regex" in str(caught.value)


def test_unknown_transport_kind_keeps_the_file_name():
    with pytest.raises(IotError) as caught:
        load('thing t { component c: D on udp "x" }', "house.iot")
    assert str(caught.value).startswith("house.iot:1:29: error: ")


@pytest.mark.parametrize(
    ("source", "column", "fragment"),
    [
        ("device D { property p: integer }", 24, "unknown type 'integer'; did you mean 'int'?"),
        ("device D(zone: number) { }", 16, "unknown type 'number'; did you mean 'float'?"),
        ("device D { property p: xyzzy }", 24, "unknown type 'xyzzy' (types: bool, int"),
        ("device D { property p: 5 }", 24, "needs a type: `NAME: bool | int | float"),
        ("device D(zone: 5) { }", 16, "needs a type"),
        ('thing t { component c: D on telnet "x" }', 29, '`on custom "module:Class"`'),
    ],
)
def test_slips_in_types_and_transports_get_a_sentence(source: str, column: int, fragment: str):
    with pytest.raises(IotError) as caught:
        load(source)
    assert (caught.value.line, caught.value.column) == (1, column)
    assert fragment in caught.value.diagnostics[0].message


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "host:", "host:0", "host:65536", "host:http", ":23", "fe80::1:23", "tcp://h"],
)
def test_a_tcp_address_needs_host_and_port(address: str):
    with pytest.raises(IotError) as caught:
        load(f'device D {{ transport tcp }}\nthing t {{ port p: tcp "{address}" }}')
    assert (caught.value.line, caught.value.column) == (2, 23)
    assert "tcp" in caught.value.diagnostics[0].message


@pytest.mark.parametrize(
    "address", ["127.0.0.1:23", "tcp://av.local:60128", "socket://10.0.0.2:4999", "[fe80::1]:23"]
)
def test_tcp_addresses_with_a_port_pass(address: str):
    load(f'device D {{ transport tcp }}\nthing t {{ component c: D on tcp "{address}" }}')
