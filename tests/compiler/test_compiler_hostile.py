"""Hostile input to `pyiot compile -o`: nothing from a file or its name runs when the driver loads.

A file name holding `\"\"\"` and an expression once ran that expression on every import of the
driver (the path went raw into the module docstring). Every name, value and string now reaches
the generated source as an escaped literal; the driver still works.
"""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyiot.compiler import Program, load_program
from pyiot.compiler.codegen import _docstring, _escaped, _literal, driver_source
from tests.waiting import PATIENCE

# A value of every kind that has ever broken a generator: quotes of both kinds, triple quotes,
# backslashes (also one at the very end), newlines, NUL, a form feed, a surrogate-free emoji.
NASTY = 'a"""b\'\'\'c\\"\\n{x}\x00\x0c\r\n\ud83d\ude00' + "\\"

# Expressions that mark the folder when they run; the file names carry them.
MARK = 'open("PWNED","w").close()'
HOSTILE_NAMES = [
    f'x"""+{MARK}+""".iot',  # ran on import before the fix
    f"x'''+{MARK}+'''.iot",
    f'x"""\n{MARK}\n""".iot',  # a newline: breaks out of the comment that named the file
    f'x\\"""+{MARK}+"""\\.iot',
    # Bytes that are not UTF-8 in a Linux file name (Python holds them as lone surrogates).
    os.fsdecode(b"x\xff") + f'"""+{MARK}+""".iot',
]


def hostile_source() -> str:
    # Strings with quotes, backslashes and escapes everywhere a string may go.
    return r"""
device Relay "it said \"\"\" + __import__('os').system('x') + \"\"\" \\ and\nmore" {
    framing line "\r\n\"\"\"\\"
    property state: bool {
        query "Q\"\"\"\\{{"
        reply /^R(?P<value>ON|OFF|\"\"\"|\\)$/
        set "S{value}\"\"\"\\"
        map { ON = true, "OFF\"\"\"\\" = false }
    }
    property label: string { set "L{value}" map { "a\"\"\"" = "b'''\\" } }
}
thing t {
    component c: Relay on serial "/dev/null\"\"\"\\"
}
"""


@pytest.mark.parametrize(
    "name", HOSTILE_NAMES, ids=["triple-double", "triple-single", "newline", "backslash", "not-utf8"]
)
def test_hostile_file_names_and_values_do_not_run(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    source = folder / name
    source.write_text(hostile_source(), encoding="utf-8")
    driver = folder / "driver.py"
    result = subprocess.run(
        [sys.executable, "-m", "pyiot", "compile", name, "-o", "driver.py"],
        capture_output=True,
        text=True,
        errors="replace",  # the output names the file, whose name may not be UTF-8
        cwd=folder,
        timeout=PATIENCE * 4,
    )
    assert result.returncode == 0, result.stderr
    # Import it as a user would, in a fresh process, in the folder the mark would land in.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import driver, json; print(json.dumps([driver.SOURCE, driver.Relay.__doc__,"
            " driver.PROGRAM.model.devices['Relay'].properties['state'].set_format]))",
        ],
        capture_output=True,
        text=True,
        errors="replace",  # the output names the file, whose name may not be UTF-8
        cwd=folder,
        timeout=PATIENCE * 4,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), *sys.path])},
    )
    assert loaded.returncode == 0, loaded.stderr
    assert not (folder / "PWNED").exists(), "the file name ran as code"
    path, doc, set_format = json.loads(loaded.stdout)
    assert path == name
    assert doc == "it said \"\"\" + __import__('os').system('x') + \"\"\" \\ and\nmore"
    assert set_format == 'S{value}"""\\'
    # And the driver is the same program as the file (compiled from the same relative name).
    monkeypatch.chdir(folder)
    assert load_program(driver) == load_program(Path(name))


def test_driver_runs_the_same_after_hostile_values(tmp_path: Path) -> None:
    source = tmp_path / "ok.iot"
    source.write_text(hostile_source(), encoding="utf-8")
    program = load_program(source)
    text = driver_source(program, 'drv"""\n.py')
    tree = ast.parse(text)
    # The module's statements are what the template writes and nothing else.
    names = [
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    ]
    assert names == ["SOURCE", "MODEL", "MACHINES", "MODES", "PROGRAM"]
    assert [n.name for n in tree.body if isinstance(n, ast.ClassDef)] == ["Relay"]
    assert ast.get_docstring(tree, clean=False).startswith(f"pyiot driver compiled from {source} ")


@given(st.text())
def test_escaped_text_reads_back_exactly(text: str) -> None:
    literal = '"""' + _escaped(text) + '"""'
    assert ast.literal_eval(literal) == text
    assert "\n" not in literal  # one line: nothing can start a statement
    assert ast.literal_eval(_docstring(text)) == text


def test_nasty_text_in_a_docstring_and_a_literal() -> None:
    assert ast.literal_eval(_docstring(NASTY)) == NASTY
    assert ast.literal_eval(_literal({NASTY: [NASTY, 1.5, -3, True, None]})) == {
        NASTY: [NASTY, 1.5, -3, True, None]
    }


@pytest.mark.parametrize(
    "bad", [math.inf, -math.inf, math.nan, object()], ids=["inf", "-inf", "nan", "object"]
)
def test_literals_refuse_what_would_not_read_back(bad: object) -> None:
    # `repr(inf)` is `inf`: a NameError when the driver loads (a 400-digit timeout did this).
    with pytest.raises(ValueError, match="cannot write"):
        _literal({"timeout": [bad]})


def test_absurd_timeout_is_a_compile_error_not_a_broken_driver(tmp_path: Path) -> None:
    source = tmp_path / "nines.iot"
    source.write_text("device D {\n    timeout " + "9" * 400 + "s\n}\n")
    driver = tmp_path / "nines.py"
    result = subprocess.run(
        [sys.executable, "-m", "pyiot", "compile", str(source), "-o", str(driver)],
        capture_output=True,
        text=True,
        timeout=PATIENCE * 4,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"{source}:2:13: error: duration ")
    assert not driver.exists()


def test_driver_program_type(tmp_path: Path) -> None:
    source = tmp_path / "ok.iot"
    source.write_text(hostile_source(), encoding="utf-8")
    assert isinstance(load_program(source), Program)
