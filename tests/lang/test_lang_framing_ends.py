"""What a `framing line` may say about command ends: none (Extron SIS), text before (NAD)."""

from __future__ import annotations

import pytest

from pyiot.lang import IotError, load

SOURCE = """device D {
    framing FRAMING
    property p: bool { query "P?" reply /^P(?P<value>[01])$/ map { "1" = true, "0" = false } }
}
"""


@pytest.mark.parametrize(
    ("framing", "terminator", "before", "replies"),
    [
        ('line "" replies "\\r\\n"', "", "", ["\r\n"]),
        ('line "\\r" before "\\r"', "\r", "\r", []),
    ],
)
def test_commands_without_an_end_or_with_text_before(framing, terminator, before, replies):
    device = load(SOURCE.replace("FRAMING", framing), "d.iot").devices["D"]
    assert (device.line_terminator, device.line_before) == (terminator, before)
    assert device.reply_terminators == replies


@pytest.mark.parametrize(
    ("framing", "message"),
    [
        ('line ""', "line terminator must not be empty, unless `replies` says how replies end"),
        ('line "" replies ""', "a line end is empty"),
    ],
)
def test_replies_need_an_end(framing, message):
    with pytest.raises(IotError) as caught:
        load(SOURCE.replace("FRAMING", framing), "d.iot")
    assert message in str(caught.value)
    assert caught.value.line == 2


def test_a_counted_reply_needs_its_size_group():
    framing = 'line "!" counted /^product_type=(\\d\\d),/'
    with pytest.raises(IotError) as caught:
        load(SOURCE.replace("FRAMING", framing), "d.iot")
    assert "no group named 'size'" in str(caught.value)
    assert caught.value.line == 2
