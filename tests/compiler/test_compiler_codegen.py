"""Compiled drivers: readable Python that loads back into the very program the .iot file gives."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from pyiot.compiler import Program, compile_file, load_program
from pyiot.compiler.codegen import driver_source


def _write_driver(program: Program, path: Path) -> Path:
    path.write_text(driver_source(program, path.name), encoding="utf-8")
    return path


@pytest.mark.parametrize("which", ["relay", "rich"])
def test_driver_is_valid_python_and_loads_back_equal(which, relay_path, rich_path, tmp_path):
    source_path = relay_path if which == "relay" else rich_path
    program = compile_file(source_path)
    driver = _write_driver(program, tmp_path / f"{which}_driver.py")
    text = driver.read_text(encoding="utf-8")
    ast.parse(text)  # valid Python
    compile(text, str(driver), "exec")
    loaded = load_program(driver)
    assert isinstance(loaded, Program)
    assert loaded.model == program.model
    assert loaded.machines == program.machines
    assert loaded == program


def test_driver_carries_positions_for_diagnostics(relay_path, tmp_path):
    program = compile_file(relay_path)
    loaded = load_program(_write_driver(program, tmp_path / "relay_driver.py"))
    prop = loaded.model.devices["Relay"].properties["relayState"]
    assert (prop.pos.line, prop.pos.column) == (15, 14)
    assert prop.positions["reply"].line == 17


def test_driver_is_readable(relay_path, tmp_path):
    text = driver_source(compile_file(relay_path), "relay_driver.py")
    assert text.startswith('"""pyiot driver compiled from')
    assert "class Relay:" in text
    assert '"""Single-channel serial relay"""' in text
    assert "RELAY{value}" in text
    assert "MACHINES = " in text and "PROGRAM = " in text


def test_device_classes_in_the_driver(rich_path, tmp_path):
    """A device named like a Python keyword, a description with quotes and a backslash."""
    driver = _write_driver(compile_file(rich_path), tmp_path / "rich_driver.py")
    namespace: dict = {}
    exec(compile(driver.read_text(encoding="utf-8"), str(driver), "exec"), namespace)
    zone = namespace["Zone"]
    assert zone.__doc__ == 'Monoprice zone "{zone}" C:\\amp'
    assert zone.properties == ("power", "volume", "gain", "input")
    assert zone.device is namespace["PROGRAM"].model.devices["Zone"]
    assert namespace["import_"].device.name == "import"


def test_driver_runs_as_a_script(relay_path, tmp_path):
    """`python driver.py --help` reaches the CLI's run command."""
    driver = _write_driver(compile_file(relay_path), tmp_path / "relay_driver.py")
    done = subprocess.run(
        [sys.executable, str(driver), "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_load_program_of_an_iot_file(relay_path, relay_program):
    assert load_program(relay_path) == relay_program


def test_load_program_refuses_a_module_that_is_not_a_driver(tmp_path):
    other = tmp_path / "other.py"
    other.write_text("X = 1\n", encoding="utf-8")
    with pytest.raises(ImportError, match="not a pyiot driver"):
        load_program(other)
