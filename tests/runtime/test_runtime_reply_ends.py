"""Replies ended differently from commands (`framing line "\\r" replies "\\r\\n", "\\r"`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pyiot.lang import load
from pyiot.runtime.framing import LineFramer, framer_for

SOURCE = """
device Amp { framing line "\\r" replies "\\r\\n", "\\r" prompt "#" echo property p: int { query "?" reply /^(?P<value>\\d+)$/ } }
"""


def test_commands_take_the_command_end_and_replies_any_reply_end():
    framer = framer_for(load(SOURCE, "a.iot").devices["Amp"])
    assert framer.encode("?11") == b"?11\r"
    # The Monoprice's own bytes: the echo with its CR, CR LF, the prompt, the reply, the prompt.
    frames = framer.feed(b"?11\r\r\n#>1\r\n#")
    assert [str(f) for f in frames] == ["?11", "PROMPT", ">1", "PROMPT"]


def test_a_cr_at_the_end_of_a_read_and_its_lf_in_the_next_make_one_end():
    framer = LineFramer("\r", None, ("\r\n", "\r"))
    assert framer.feed(b"12\r") == ["12"]
    assert framer.feed(b"\n34\r\n") == ["34"]
    assert framer.feed(b"5\r6\r\n") == ["5", "6"]


@given(st.lists(st.text(alphabet="0123456789AB ", min_size=1, max_size=8), max_size=6),
       st.lists(st.sampled_from(["\r", "\r\n"]), min_size=6, max_size=6),
       st.integers(min_value=1, max_value=7))
def test_lines_come_out_whole_however_the_bytes_are_split(lines, ends, size):
    data = "".join(line + end for line, end in zip(lines, ends, strict=False)).encode()
    framer = LineFramer("\r", None, ("\r\n", "\r"))
    got = []
    for at in range(0, len(data), size):
        got += framer.feed(data[at : at + size])
    assert got == [line for line in lines if line]
