"""Limits of the compiler: files that are not source, absurd numbers, deep nesting.

Each was a traceback, a MemoryError, a hang or a leak of another file's content; each is now a
FILE:LINE:COL error. Where a hang is possible the test runs `pyiot compile` as a process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyiot.lang import IotError, SourceError, limits, load, load_file
from tests.waiting import PATIENCE

RELAY = 'device Relay {\n    property on: bool { set "R{value}" map { ON = true, OFF = false } }\n}\n'


def compile_cli(path: Path, stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess:
    """`pyiot compile PATH` as a user runs it; the timeout only ends a hang."""
    return subprocess.run(
        [sys.executable, "-m", "pyiot", "compile", str(path)],
        capture_output=True,
        text=True,
        stdin=stdin,
        timeout=PATIENCE * 4,
        cwd=path.parent,
    )


def assert_positioned(result: subprocess.CompletedProcess, where: str) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"{where}: error: "), result.stderr
    return result.stderr


# imports ------------------------------------------------------------------------------------------
def test_import_of_dev_zero_is_refused_at_the_import(tmp_path: Path) -> None:
    main = tmp_path / "main.iot"
    main.write_text('import "/dev/zero"\n' + RELAY)
    stderr = assert_positioned(compile_cli(main), f"{main}:1:8")
    assert "cannot import '/dev/zero': a character device, not a regular file" in stderr


def test_import_of_dev_stdin_does_not_wait_for_input(tmp_path: Path) -> None:
    main = tmp_path / "main.iot"
    main.write_text(RELAY + 'import "/dev/stdin"\n')
    # A pipe that nobody writes to or closes: reading it would wait forever.
    read_end, write_end = os.pipe()
    try:
        result = compile_cli(main, stdin=read_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    stderr = assert_positioned(result, f"{main}:4:8")
    assert "cannot import '/dev/stdin'" in stderr


def test_import_of_a_fifo_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.iot")
    main = tmp_path / "main.iot"
    main.write_text('import "pipe.iot"\n')
    stderr = assert_positioned(compile_cli(main), f"{main}:1:8")
    assert "a fifo, not a regular file" in stderr


def test_error_in_a_foreign_import_gives_the_place_not_the_content(tmp_path: Path) -> None:
    secret = tmp_path / "credentials.txt"
    secret.write_text("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG\n")
    main = tmp_path / "main.iot"
    main.write_text(RELAY + 'import "credentials.txt"\n')
    stderr = assert_positioned(compile_cli(main), f"{main}:4:8")
    assert "not .iot source (stops at 1:1)" in stderr
    assert "wJalr" not in stderr and "aws_secret" not in stderr


def test_semantic_error_in_a_foreign_import_is_not_quoted_either(tmp_path: Path) -> None:
    # Valid syntax, but an error inside: the position is given, the line is not shown.
    (tmp_path / "other.txt").write_text("device Relay {\n    timeout 0s # SECRET-LINE\n}\n")
    main = tmp_path / "main.iot"
    main.write_text('import "other.txt"\n')
    with pytest.raises(IotError) as caught:
        load_file(main)
    rendered = caught.value.render()
    assert "other.txt:2:13: error: timeout must be above zero" in rendered
    assert "SECRET-LINE" not in rendered


def test_import_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.iot"
    big.write_text("# padding\n" * (limits.MAX_FILE_BYTES // 10 + 1))
    main = tmp_path / "main.iot"
    main.write_text('import "big.iot"\n')
    with pytest.raises(IotError) as caught:
        load_file(main)
    assert (caught.value.line, caught.value.column) == (1, 8)
    assert "larger than 1,000,000 bytes" in caught.value.diagnostics[0].message


def test_import_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "latin.iot").write_bytes(b'device R "caf\xe9" {}\n')
    main = tmp_path / "main.iot"
    main.write_text('import "latin.iot"\n')
    with pytest.raises(IotError) as caught:
        load_file(main)
    assert "not UTF-8 text (byte 14)" in caught.value.diagnostics[0].message


def test_imports_nest_only_so_deep(tmp_path: Path) -> None:
    depth = limits.MAX_IMPORT_DEPTH + 3
    for n in range(depth):
        (tmp_path / f"f{n}.iot").write_text(f'import "f{n + 1}.iot"\n')
    (tmp_path / f"f{depth}.iot").write_text(RELAY)
    with pytest.raises(IotError) as caught:
        load_file(tmp_path / "f0.iot")
    assert "imports nest more than 32 files deep" in caught.value.diagnostics[0].message


def test_the_file_given_must_be_a_regular_file_too() -> None:
    with pytest.raises(SourceError, match="a character device, not a regular file"):
        load_file("/dev/zero")


def test_compiling_dev_zero_is_one_line() -> None:
    result = compile_cli(Path("/dev/zero"))
    assert result.returncode == 1
    assert result.stderr == "pyiot: error: cannot read /dev/zero: a character device, not a regular file\n"


# numbers and nesting --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("timeout " + "9" * 400 + "s", (2, 13), "longer than a week"),
        ("backoff 8d", (2, 13), "expected a duration such as 500ms"),  # no such unit
        ("poll every 169h", (2, 16), "longer than a week"),
        ("retries " + "9" * 5000, (2, 13), "too many"),
        ('property v: int 0..' + "9" * 4301 + ' { set "V{value}" }', (2, 24), "too large"),
        ('property v: int -' + "9" * 17 + '..0 { set "V{value}" }', (2, 22), "too large"),
        ('property v: float 0..1 step ' + "9" * 400 + '.5 { set "V{value}" }', (2, 33), "too large"),
        ('property v: float 0..1 step 0.0 { set "V{value}" }', (2, 33), "step must be above zero"),
    ],
    ids=["timeout", "unit", "poll", "retries", "bound", "negative", "step", "zero-step"],
)
def test_absurd_numbers_are_positioned_errors(text: str, where: tuple, fragment: str) -> None:
    with pytest.raises(IotError) as caught:
        load("device D {\n    " + text + "\n}\n", "n.iot")
    assert (caught.value.line, caught.value.column) == where, caught.value.render()
    assert fragment in caught.value.diagnostics[0].message


def test_the_largest_allowed_numbers_compile() -> None:
    model = load(
        "device D {\n    timeout 168h\n    retries 100\n"
        f'    property v: int -{2**53}..{2**53} {{ set "V{{value}}" }}\n}}\n'
    )
    assert model.devices["D"].properties["v"].type.maximum == 2**53


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("-" * 5000 + "value", "nested more than 60 levels deep"),
        ("(" * 1000 + "value" + ")" * 1000, None),  # parentheses alone add no depth
        ("value" + " + 1" * 5000, "nested more than 60 levels deep"),
    ],
    ids=["minuses", "parentheses", "long-sum"],
)
def test_deep_expressions_are_positioned_errors_not_recursion(expression: str, fragment) -> None:
    source = (
        'device D {\n    property v: float {\n        set "V{value}"\n'
        f"        convert {{ read = {expression}, write = value }}\n    }}\n}}\n"
    )
    if fragment is None:
        load(source)
        return
    with pytest.raises(IotError) as caught:
        load(source, "deep.iot")
    assert caught.value.line == 4
    assert fragment in caught.value.diagnostics[0].message


def test_deep_regex_groups_are_a_positioned_error() -> None:
    pattern = "(" * 1000 + "?P<value>x" + ")" * 1000
    with pytest.raises(IotError) as caught:
        load(f'device D {{\n    property v: string {{ query "Q" reply /{pattern}/ }}\n}}\n')
    # `    property v: string { query "Q" reply /` is 42 characters: the first "(" is column
    # 43, the 101st column 143.
    assert (caught.value.line, caught.value.column) == (2, 143)


def test_compile_of_deep_and_huge_files_is_one_error_each(tmp_path: Path) -> None:
    cases = {
        "minus.iot": 'device D {\n    property v: float { set "V{value}" convert { read = '
        + "-" * 5000
        + "value, write = value } }\n}\n",
        "groups.iot": 'device D {\n    property v: string { query "Q" reply /'
        + "(" * 1000
        + "?P<value>x"
        + ")" * 1000
        + "/ }\n}\n",
        "bound.iot": 'device D {\n    property v: int 0..' + "9" * 4301 + ' { set "V{value}" }\n}\n',
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        result = compile_cli(path)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith(f"{path}:2:"), result.stderr
        stderr = result.stderr[len(str(path)) :]
        assert stderr.count("error:") == 1, stderr
        # The shown line is cut around the caret: the output stays small.
        assert all(len(line) < 200 for line in stderr.splitlines()), stderr


def test_long_lines_are_shown_cut_around_the_caret() -> None:
    with pytest.raises(IotError) as caught:
        load("device D {\n    timeout " + "9" * 400 + "s\n}\n", "long.iot")
    _, shown, caret = caught.value.render().split("\n")
    assert len(shown) < 120 and shown.endswith("...")
    assert shown[caret.index("^") :].startswith("999")


def test_no_number_in_a_model_is_infinite_or_beyond_json() -> None:
    # The largest duration and bound the file can hold survive to JSON and back.
    import json
    import math

    model = load('device D {\n    backoff 168h\n    property v: float 0..9007199254740992 { set "V{value}" }\n}\n')
    data = json.dumps(model.to_data(), allow_nan=False)
    assert math.isfinite(json.loads(data)["devices"]["D"]["backoff"])
