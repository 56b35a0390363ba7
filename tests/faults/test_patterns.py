"""Reply patterns are RE2: what RE2 refuses is a positioned error saying what to write instead,
and matching time does not depend on how hostile the pattern or the line is."""

from __future__ import annotations

import pytest

from pyiot.lang import IotError, load
from pyiot.lang.model import Regex

SOURCE = """device D {
    transport serial { baud 9600 }
    framing line "\\n"
    property p: string {
        query "P?"
        reply PATTERN
    }
}
"""


def refusal(pattern: str) -> tuple[str, str, str]:
    """(`FILE:LINE:COL`, message, the character under the caret) for a refused pattern."""
    with pytest.raises(IotError) as caught:
        load(SOURCE.replace("PATTERN", pattern), "p.iot")
    rendered = caught.value.render()
    head, shown, caret = rendered.split("\n")[:3]
    where, _, message = head.partition(": error: ")
    return where, message, shown[caret.index("^")]


@pytest.mark.parametrize(
    ("pattern", "said", "under_caret"),
    [
        (r"/^P(?P<value>(\w)\1)$/", "backreference", "\\"),
        (r"/^P(?=x)(?P<value>.+)$/", "lookahead", "("),
        (r"/^P(?<=x)(?P<value>.+)$/", "lookbehind", "("),
        (r"/^P(?P<value>a++)$/", "possessive", "+"),
        (r"/^P(?>a)(?P<value>b)$/", "atomic", "("),
        (r"/^P(?P<value>.+)\Z/", "write $", "\\"),
        (r"/^P(?P<value>.{1,4294967295})$/", "above 1000", "{"),
        (r"/^P(?P<value>.{1," + "9" * 400 + "})$/", "above 1000", "{"),
        (r"/^P(?P<value>.{1001})$/", "above 1000", "{"),
        (r"/^P(?P<value>.+)$/x", "verbose", "x"),
    ],
)
def test_what_re2_refuses_is_a_positioned_error_with_advice(
    pattern: str, said: str, under_caret: str
) -> None:
    where, message, target = refusal(pattern)
    assert where.startswith("p.iot:6:")
    assert said in message
    assert target == under_caret
    assert "Traceback" not in message and len(message) < 300


def test_named_groups_and_flags_keep_working() -> None:
    compiled = Regex(r"^>(?P<zone>{zone})VO(?P<value>\d\d)$", "i").compile({"zone": 11})
    found = compiled.search(">11vo25")
    assert found is not None and found.group("value") == "25" and found.group("zone") == "11"
    assert compiled.search(">12VO25") is None


def test_a_catastrophic_pattern_matches_a_crafted_line_at_once() -> None:
    """With Python's re this line takes 2**60 steps; RE2 answers in one pass."""
    compiled = Regex(r"^STATUS (?P<value>(\w+\s?)+)$").compile()
    assert compiled.search("STATUS " + "a" * 60 + "!") is None
    assert compiled.search("STATUS on line 2").group("value") == "on line 2"
