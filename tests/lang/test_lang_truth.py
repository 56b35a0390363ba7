"""The constructs real protocols needed (issue 13): parsed into the model, checked with positions."""

from __future__ import annotations

import pytest

from pyiot.lang import IotError, load
from pyiot.lang.values import decode, encode

BASE = """
device D(output: int) {
    framing line "\\r" replies "\\r\\n", "\\r" accepts "\\n" prompt "#" echo
    commands in any case
    send "ECH1", "Z1POW?" on connect
    greeting "HELLO\\r"
    error /^ERR$/
    property volume: float 0..99 step 0.5 {
        query "MV?" reply /^MV(?P<value>\\d\\d\\d?)$/ format "03d" then /^MVMAX \\d\\d$/
        set "MV{value:02d}"
        set timeout 10s
        convert { read = value / 10 if digits == 3 else value,
                  write = value * 10 if value != floor(value) else value }
        error /^MVERR$/
        initial 40.5
    }
    property step: enum { up = "+", down = "-" } {
        set "V{value}" writeonly adjusts volume by { up = 0.5, down = -0.5 }
    }
    property tie: int 0..8 { query "{output}%" reply /^(?P<value>\\d\\d)$/ set "{value}*{output}!"
                             ack /^Out{output:02d} In(?P<value>\\d\\d)$/ }
    property level: int 0..96 { reply /^level=(?P<value>\\d\\d|max)$/ set "level_{value}" map { max = 96 } }
}
"""


def test_every_new_construct_reaches_the_model():
    device = load(BASE, "d.iot").devices["D"]
    assert (device.line_terminator, device.reply_terminators, device.command_terminators) == (
        "\r", ["\r\n", "\r"], ["\n"])
    assert device.commands_any_case and device.greeting == "HELLO\r"
    assert device.connect_commands == ["ECH1", "Z1POW?"]
    volume = device.properties["volume"]
    assert (volume.reply_format, volume.set_timeout, volume.initial) == ("03d", 10.0, 40.5)
    assert [r.source for r in volume.reply_then] == [r"^MVMAX \d\d$"]
    assert volume.error.source == "^MVERR$"
    step = device.properties["step"]
    assert (step.adjusts, step.adjust_by) == ("volume", {"up": 0.5, "down": -0.5})
    assert device.properties["tie"].ack.compile({"output": 3}).search("Out03 In01")


def test_a_conversion_that_depends_on_the_texts_length():
    volume = load(BASE, "d.iot").devices["D"].properties["volume"]
    assert decode(volume, "505") == 50.5
    assert decode(volume, "50") == 50.0
    assert encode(volume, 50.5) == 505
    assert encode(volume, 50.0) == 50


def test_words_in_a_numbers_place():
    level = load(BASE, "d.iot").devices["D"].properties["level"]
    assert decode(level, "max") == 96
    assert decode(level, "42") == 42


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("adjusts volume by", "adjusts nothing by"), "unknown property 'nothing' to adjust"),
        (("down = -0.5", "sideways = -0.5"), "'sideways' is no value of step"),
        (('format "03d"', 'format "zz"'), "bad reply format 'zz'"),
        (("set timeout 10s", "set timeout 10s readonly"), "readonly property 'volume' has a set"),
        (("initial 40.5", "initial 40.3"), "between steps"),
        (('greeting "HELLO\\r"', 'greeting ""'), "a greeting must not be empty"),
        (('send "ECH1"', 'send "ECH{zone}"'), "unknown field '{zone}'"),
    ],
)
def test_mistakes_are_errors_at_their_place(change, message):
    old, new = change
    assert old in BASE
    with pytest.raises(IotError) as err:
        load(BASE.replace(old, new), "d.iot")
    assert message in str(err.value)
    assert "d.iot:" in str(err.value)


def test_a_reject_answer_must_be_an_error_the_runtime_knows():
    source = BASE.replace(
        "    property level:",
        '    modes from volume { a -> b : after 1s  reject set tie unless a "off" answer "NOPE" }\n'
        "    property level:",
    )
    with pytest.raises(IotError, match="answer 'NOPE' matches no error pattern"):
        load(source, "d.iot")
    fine = source.replace('answer "NOPE"', 'answer "ERR"')
    assert load(fine, "d.iot").devices["D"].modes.holds[0].answer == "ERR"


def test_a_set_timeout_needs_a_set():
    source = BASE.replace('query "{output}%"', 'query "{output}%" set timeout 5s').replace(
        'set "{value}*{output}!"', ""
    ).replace("ack /^Out{output:02d} In(?P<value>\\d\\d)$/", "")
    with pytest.raises(IotError, match="'tie' has a set timeout but no set"):
        load(source, "d.iot")
