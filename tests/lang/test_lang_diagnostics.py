"""IotError.render(): `FILE:LINE:COL: error: MESSAGE`, the source line, a caret under the column."""

from __future__ import annotations

import pytest

from pyiot.lang import Diagnostic, IotError, SourcePos, load, load_file


def _caret_target(rendered_block: str) -> tuple[str, str]:
    """(source line shown, character the caret points at) of one rendered diagnostic."""
    head, shown, caret = rendered_block.split("\n")
    assert shown.startswith("    ") and caret.startswith("    ")
    assert caret.strip() == "^"
    index = caret.index("^")
    return shown[4:], shown[index]


def test_render_shows_position_source_line_and_caret(bad_dir):
    path = bad_dir / "bad_regex.iot"
    with pytest.raises(IotError) as caught:
        load_file(path)
    rendered = caught.value.render()
    head = rendered.split("\n")[0]
    assert head == f"{path}:4:21: error: bad regex: missing ), unterminated subpattern"
    shown, target = _caret_target(rendered)
    assert shown == "        reply /^PWR=(?P<value>\\d\\d$/"
    assert target == "("


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ('device D {\n    retries "two"\n}', '"'),
        ("device D {\n\tretries x\n}", "x"),  # a tab counts as one column
        ("device D {\n\t\ttimeout 5sx\n}", "5"),
        ('thing t {\n  component c: Nope on serial "/x"\n}', "N"),
    ],
)
def test_caret_points_at_the_offending_text(source, target):
    with pytest.raises(IotError) as caught:
        load(source, "mem.iot")
    rendered = caught.value.render()
    assert rendered.startswith(f"mem.iot:{caught.value.line}:{caught.value.column}: error: ")
    _, char = _caret_target(rendered)
    assert char == target


def test_render_of_several_diagnostics_repeats_the_layout(bad_dir):
    with pytest.raises(IotError) as caught:
        load_file(bad_dir / "several_errors.iot")
    lines = caught.value.render().split("\n")
    assert len(lines) == 3 * len(caught.value.diagnostics)
    blocks = ["\n".join(lines[i : i + 3]) for i in range(0, len(lines), 3)]
    targets = [_caret_target(block)[1] for block in blocks]
    assert targets == ["0", "r", "/", '"', "R"]


def test_diagnostic_reads_the_file_when_no_source_is_given(tmp_path):
    path = tmp_path / "x.iot"
    path.write_text("device D {\n    retries 2\n}\n", encoding="utf-8")
    diagnostic = Diagnostic(SourcePos(str(path), 2, 13), "too many")
    assert diagnostic.render() == (
        f"{path}:2:13: error: too many\n        retries 2\n                ^"
    )


def test_diagnostic_without_readable_source_is_just_the_head():
    diagnostic = Diagnostic(SourcePos("/nonexistent/x.iot", 3, 1), "gone")
    assert diagnostic.render() == "/nonexistent/x.iot:3:1: error: gone"
    # A line outside the source is not invented either.
    assert Diagnostic(SourcePos("m", 9, 1), "far").render("one line") == "m:9:1: error: far"


def test_diagnostics_are_sorted_by_position():
    err = IotError(
        [
            Diagnostic(SourcePos("f", 3, 1), "third"),
            Diagnostic(SourcePos("f", 1, 5), "second"),
            Diagnostic(SourcePos("f", 1, 2), "first"),
        ]
    )
    assert [d.message for d in err.diagnostics] == ["first", "second", "third"]
    assert (err.line, err.column) == (1, 2)
    assert str(err) == "f:1:2: error: first"


def test_form_feed_does_not_shift_the_shown_line():
    # The parser counts lines by "\n"; a form feed is whitespace inside a line.
    source = "device D {\f\n    retries x\n}"
    with pytest.raises(IotError) as caught:
        load(source, "ff.iot")
    assert (caught.value.line, caught.value.column) == (2, 13)
    shown, target = _caret_target(caught.value.render())
    assert shown == "    retries x"
    assert target == "x"


def test_crlf_source_renders_without_carriage_returns():
    with pytest.raises(IotError) as caught:
        load("device D {\r\n    retries x\r\n}\r\n", "crlf.iot")
    shown, target = _caret_target(caught.value.render())
    assert shown == "    retries x"
    assert target == "x"
    with pytest.raises(IotError) as caught:
        load("device D {\r\n    retries 2\r\n\r\n", "crlf.iot")
    assert (caught.value.line, caught.value.column) == (2, 14)
