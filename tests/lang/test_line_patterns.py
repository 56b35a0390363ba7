"""Reply patterns remember the lines they matched: same answers, bounded memory, shared."""

from __future__ import annotations

import pytest

from pyiot.lang.model import Regex
from pyiot.lang.regex import MEMO_LINE_LENGTH, MEMO_LINES, compile_re2

RELAY = r"^RELAY(?P<value>ON|OFF)$"


def test_a_repeated_line_gets_the_answer_it_got_the_first_time() -> None:
    pattern = compile_re2(RELAY)
    for _ in range(3):
        assert pattern.search("RELAYON").group("value") == "ON"
        assert pattern.search("RELAYOFF").group("value") == "OFF"
        assert pattern.search("RELAYMAYBE") is None


def test_a_long_line_is_matched_and_not_kept() -> None:
    pattern = compile_re2(r"(?P<value>\d+)$")
    line = "x" * (MEMO_LINE_LENGTH * 4) + "42"
    for _ in range(2):
        assert pattern.search(line).group("value") == "42"
    assert line not in pattern._seen


def test_a_device_that_never_repeats_itself_keeps_memory_bounded() -> None:
    pattern = compile_re2(r"^V(?P<value>\d+)$")
    for n in range(10 * MEMO_LINES + 3):
        assert pattern.search(f"V{n}").group("value") == str(n)
        assert len(pattern._seen) <= MEMO_LINES
    # Forgotten lines are searched again, with the same answer.
    assert pattern.search("V0").group("value") == "0"
    assert pattern.search("nonsense") is None


def test_components_with_the_same_pattern_share_it_and_others_keep_their_own() -> None:
    zone = Regex(r"^Z(?P<zone>{zone})(?P<value>ON|OFF)$")
    first, same = zone.compile({"zone": 1}), zone.compile({"zone": 1})
    other = zone.compile({"zone": 2})
    assert first is same
    assert other is not first
    assert first.search("Z1ON").group("value") == "ON"
    assert other.search("Z1ON") is None  # zone 2's pattern does not take zone 1's line
    assert other.search("Z2OFF").group("value") == "OFF"


def test_a_group_that_took_no_part_is_none_and_an_unknown_group_is_an_index_error() -> None:
    found = compile_re2(r"^VOL(?P<value>\d+)?$").search("VOL")
    assert found is not None
    assert found.group("value") is None
    with pytest.raises(IndexError):
        found.group("volume")
