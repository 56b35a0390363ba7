"""LineFramer: bytes from the wire -> the device's lines, whatever the chunking or the noise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyiot.runtime.framing import MAX_LINE_BYTES, LineFramer


@pytest.mark.parametrize("terminator", ["\n", "\r", "\r\n"])
def test_lines_for_each_terminator(terminator):
    framer = LineFramer(terminator)
    sep = terminator.encode()
    assert framer.feed(b"RELAYON" + sep + b"RELAYOFF" + sep) == ["RELAYON", "RELAYOFF"]
    assert framer.feed(b"PWR=01" + sep) == ["PWR=01"]


@pytest.mark.parametrize("terminator", ["\n", "\r", "\r\n"])
def test_a_line_split_across_feeds(terminator):
    framer = LineFramer(terminator)
    sep = terminator.encode()
    assert framer.feed(b"REL") == []
    assert framer.feed(b"AY") == []
    assert framer.feed(b"ON" + sep + b"RE") == ["RELAYON"]
    assert framer.feed(b"LAYOFF" + sep) == ["RELAYOFF"]


def test_crlf_split_between_feeds():
    framer = LineFramer("\r\n")
    assert framer.feed(b"OK\r") == []
    assert framer.feed(b"\nNEXT\r\n") == ["OK", "NEXT"]


def test_crlf_framer_keeps_a_lone_cr_inside_a_line():
    assert LineFramer("\r\n").feed(b"A\rB\r\n") == ["A\rB"]


def test_lf_framer_keeps_the_cr_of_crlf():
    # A "\n" framer on a "\r\n" device leaves the "\r": the file must say "\r\n".
    assert LineFramer("\n").feed(b"OK\r\n") == ["OK\r"]


def test_multi_character_terminator_such_as_a_prompt():
    framer = LineFramer("\r:")
    assert framer.feed(b"PWR=01\r") == []
    assert framer.feed(b":ERR\r:") == ["PWR=01", "ERR"]


def test_empty_lines_are_skipped():
    assert LineFramer("\n").feed(b"\n\nA\n\n\nB\n") == ["A", "B"]


def test_invalid_utf8_does_not_raise():
    framer = LineFramer("\n")
    lines = framer.feed(b"\xff\xfeRELAY\x80ON\n")
    assert lines == ["\ufffd\ufffdRELAY\ufffdON"]
    assert framer.feed(b"RELAYOFF\n") == ["RELAYOFF"]


def test_utf8_character_split_across_feeds():
    framer = LineFramer("\n")
    data = "Küche\n".encode()
    assert framer.feed(data[:2]) == []
    assert framer.feed(data[2:]) == ["Küche"]


def test_overlong_line_is_dropped_and_counted():
    framer = LineFramer("\n")
    lines = framer.feed(b"x" * (MAX_LINE_BYTES + 1) + b"\nOK\n")
    assert lines == ["OK"]
    assert framer.dropped == 1


def test_line_of_exactly_the_limit_is_kept():
    framer = LineFramer("\n")
    assert framer.feed(b"y" * MAX_LINE_BYTES + b"\n") == ["y" * MAX_LINE_BYTES]
    assert framer.dropped == 0


def test_endless_noise_without_terminator_does_not_grow_the_buffer():
    framer = LineFramer("\n")
    for _ in range(50):
        assert framer.feed(b"\x00" * 1000) == []
    assert framer.dropped >= 1
    assert len(framer._buffer) <= MAX_LINE_BYTES


def test_tail_of_an_overlong_line_is_not_delivered_as_a_line():
    framer = LineFramer("\n")
    assert framer.feed(b"x" * (MAX_LINE_BYTES + 10)) == []
    assert framer.feed(b"RELAYON\nRELAYOFF\n") == ["RELAYOFF"]
    assert framer.dropped == 1


def test_reset_forgets_a_partial_line():
    framer = LineFramer("\n")
    framer.feed(b"half a li")
    framer.reset()
    assert framer.feed(b"RELAYON\n") == ["RELAYON"]


@pytest.mark.parametrize("terminator", ["\n", "\r", "\r\n"])
def test_encode_adds_the_terminator(terminator):
    assert LineFramer(terminator).encode("RELAYON") == b"RELAYON" + terminator.encode()


LINE = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
)


@given(
    lines=st.lists(LINE, max_size=10),
    terminator=st.sampled_from(["\n", "\r", "\r\n"]),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_any_chunking_gives_the_same_lines(lines, terminator, cuts):
    stream = "".join(line + terminator for line in lines).encode("utf-8")
    framer = LineFramer(terminator)
    got: list[str] = []
    start = 0
    for cut in sorted(c % (len(stream) + 1) for c in cuts) + [len(stream)]:
        got += framer.feed(stream[start:cut])
        start = max(start, cut)
    assert got == lines
    assert framer.dropped == 0


def test_text_before_each_command_is_sent_and_stripped_on_reading() -> None:
    framer = LineFramer("\r", before="\r")
    assert framer.encode("Main.Power?") == b"\rMain.Power?\r"
    assert framer.feed(b"\rMain.Power=On\r") == ["Main.Power=On"]


def test_commands_without_an_end_are_taken_when_whole() -> None:
    """The device's side of Extron SIS: `1*3!` is whole at its `!`; CR LF ends a line too."""
    whole = {"1*3!", "3%"}
    framer = LineFramer("", replies=("\r\n",), keep_empty=True, complete=whole.__contains__)
    assert framer.feed(b"1*3") == []
    assert framer.feed(b"!3%\r\n1*3!") == ["1*3!", "3%", "", "1*3!"]
    assert framer.feed(b"X" * (MAX_LINE_BYTES + 1)) == []  # noise: dropped, counted
    assert framer.feed(b"\r\n3%") == ["3%"]
    assert framer.dropped == 1
