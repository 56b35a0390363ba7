"""Every file in devices/: it compiles and draws, and no mutation of it crashes the language.

The mutation test generalises tests/lang/test_lang_fuzz.py (the relay) to each device file:
tokens of the file are dropped, repeated, swapped for keywords or for other tokens of any device
file, then single characters are changed. Loading the result either succeeds or raises an
`IotError` whose every diagnostic points inside the mutated text; any other exception is a bug.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyiot.cli import main
from pyiot.compiler import compile_file
from pyiot.lang import IotError, load
from tests.devices.conftest import DEVICES

FILES = sorted(DEVICES.glob("*.iot"))
NAMES = [path.stem for path in FILES]
TEXTS = {path.stem: path.read_text(encoding="utf-8") for path in FILES}

# Whitespace, a comment, a string, a regex, a word, or any one other character.
_LEXEME = re.compile(r'\s+|#[^\n]*|"(?:\\.|[^"\\\n])*"|/(?:\\.|[^/\\\n])+/[imsx]*|\w+|.', re.S)


def tokens_of(text: str) -> list[str]:
    found = _LEXEME.findall(text)
    assert "".join(found) == text
    return found


TOKENS = {name: tokens_of(text) for name, text in TEXTS.items()}
ALL_TOKENS = sorted({t for tokens in TOKENS.values() for t in tokens if not t.isspace()})
# The grammar's own keywords and punctuation, and shapes a user might type in the wrong place.
GRAMMAR = (DEVICES.parent / "grammar" / "iot.lark").read_text(encoding="utf-8")
KEYWORDS = sorted(set(re.findall(r'"([^"\\\s]+)"', GRAMMAR))) + [
    *("serial", "tcp", "true", "false", "readonly", "decode", "0ms", "1s", "1..0", "(x: int)"),
    *('"{x}"', '"{"', "/(/", "\n"),
]
CHARS = st.sampled_from(list('{}()[]:,=./\\"#-?<>*+|^$!; \t\n\r0123456789aZ_é\x00'))


@st.composite
def mutants(draw, name: str) -> str:
    tokens = list(TOKENS[name])
    pool = ALL_TOKENS + KEYWORDS
    for _ in range(draw(st.integers(0, 4))):
        index = draw(st.integers(0, len(tokens) - 1))
        action = draw(st.sampled_from(["drop", "repeat", "replace", "insert"]))
        if action == "drop":
            del tokens[index]
        elif action == "repeat":
            tokens.insert(index, tokens[index])
        elif action == "replace":
            tokens[index] = draw(st.sampled_from(pool))
        else:
            tokens.insert(index, " " + draw(st.sampled_from(pool)) + " ")
    text = "".join(tokens)
    for _ in range(draw(st.integers(0 if text != TEXTS[name] else 1, 3))):
        index = draw(st.integers(0, max(len(text) - 1, 0)))
        action = draw(st.sampled_from(["drop", "insert", "replace"]))
        char = draw(CHARS)
        if action == "drop":
            text = text[:index] + text[index + 1 :]
        elif action == "insert":
            text = text[:index] + char + text[index:]
        else:
            text = text[:index] + char + text[index + 1 :]
    return text


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_device_file_loads_or_reports_inside_it(name, data):
    source = data.draw(mutants(name), label="mutant")
    path = f"{name}-mutant.iot"
    try:
        model = load(source, path)
    except IotError as err:
        assert err.diagnostics
        lines = source.split("\n")
        for diagnostic in err.diagnostics:
            pos = diagnostic.pos
            assert pos.file == path
            assert 1 <= pos.line <= len(lines), err.render()
            assert 1 <= pos.column <= len(lines[pos.line - 1]) + 1, err.render()
            assert diagnostic.message
        assert err.render().count("^") >= len(err.diagnostics)
    else:
        assert model.path == path


def test_there_are_ten_devices_and_each_has_its_tests():
    assert len(FILES) >= 10
    here = Path(__file__).parent
    for name in NAMES:
        assert (here / f"test_{name}.py").is_file(), f"devices/{name}.iot has no tests"


@pytest.mark.parametrize("name", NAMES)
def test_file_names_its_models_and_document_first(name):
    first = TEXTS[name].splitlines()[0]
    assert first.startswith("# "), "each file starts with a comment naming the model(s)"
    # relay.iot (kept as it is) names its source, the pyIOT README, in its first line.
    assert re.search(r"^# Sources?:", TEXTS[name], re.M) or name == "relay"


@pytest.mark.parametrize("name", NAMES)
def test_compiles_and_graph_renders(name, capsys):
    program = compile_file(DEVICES / f"{name}.iot")
    assert program.model.things, "each device file has a thing using it"
    assert main(["compile", str(DEVICES / f"{name}.iot")]) == 0
    assert capsys.readouterr().out.startswith(f"{DEVICES / name}.iot: OK")
    assert main(["graph", str(DEVICES / f"{name}.iot")]) == 0
    drawn = capsys.readouterr().out
    assert drawn.count("stateDiagram") == sum(
        len(thing.components) for thing in program.model.things.values()
    )
    for device in program.model.devices.values():
        # With modes the protocol machine is drawn folded, beside the device's own states.
        # Without, each of its exchanges is a state of its own: its machine is its protocol.
        table = program.machines[device.name]
        exchanges = [s["name"] for s in table["states"] if s["name"].startswith("query-")]
        shown = device.modes.names if device.modes else ["offline", "idle", *exchanges]
        for state in shown:
            assert state in drawn


def test_bad_regex_of_a_group_query_on_its_own_line_is_pointed_at():
    source = 'device D {\n    query status "?"\n        reply /^(?P<a>\\d/\n}\n'
    with pytest.raises(IotError) as err:
        load(source, "group.iot")
    pos = err.value.diagnostics[0].pos
    assert pos.line == 3, err.value.render()
    assert 15 <= pos.column <= len(source.split("\n")[2]) + 1, err.value.render()
