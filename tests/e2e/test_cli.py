"""End to end through the `pyiot` command line, with the real mosquitto, awsiotsdk and sockets."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyiot import __version__
from pyiot.cli import _parser
from tests.e2e.conftest import RELAY, ROOT, clean_environment, desired, reported, run_pyiot
from tests.waiting import PATIENCE, wait_until

pytestmark = pytest.mark.timeout(90)


def test_compile_prints_summary_and_writes_a_driver(tmp_path: Path) -> None:
    driver = tmp_path / "relay_driver.py"
    result = run_pyiot("compile", str(RELAY), "-o", str(driver))
    assert result.returncode == 0, result.stderr
    assert f"{RELAY}: OK" in result.stdout
    assert "device Relay: 1 properties (relayState: bool)" in result.stdout
    assert "thing relayOne: relay1: Relay on serial /dev/ttyUSB0" in result.stdout
    text = driver.read_text()
    compile(text, str(driver), "exec")
    assert "MACHINES = " in text and "'RELAY{value}'" in text


def test_compile_json_dumps_the_model() -> None:
    import json

    result = run_pyiot("compile", str(RELAY), "--json")
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    prop = model["devices"]["Relay"]["properties"]["relayState"]
    assert prop["value_map"] == {"ON": True, "OFF": False}
    assert prop["reply"]["source"] == "^RELAY(?P<value>ON|OFF)$"


def test_broken_file_gives_position_line_and_caret_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.iot"
    bad.write_text(RELAY.read_text().replace("timeout 500ms", "timeout 500"))
    result = run_pyiot("compile", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    message = "unexpected '500'; expected a duration such as 500ms or 5s"
    assert lines[0] == f"{bad}:10:13: error: {message}"
    # The source line, indented by four, and a caret under column 13.
    assert lines[1] == "        timeout 500"
    assert lines[2] == " " * (4 + 12) + "^"


def test_semantic_errors_are_all_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.iot"
    bad.write_text(
        RELAY.read_text()
        .replace("reply /^RELAY(?P<value>ON|OFF)$/", "reply /^RELAY(ON|OFF)$/")
        .replace("component relay1: Relay", "component relay1: Rellay")
    )
    result = run_pyiot("compile", str(bad))
    assert result.returncode == 1
    assert f"{bad}:17:15: error: reply pattern has no group named 'value'" in result.stderr
    assert f"{bad}:24:23: error: unknown device 'Rellay' (known: Relay)" in result.stderr
    assert "2 errors" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_is_one_line() -> None:
    result = run_pyiot("compile", "no-such-file.iot")
    assert result.returncode == 1
    assert result.stderr.startswith("pyiot: error: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_graph_prints_the_running_machine_as_mermaid() -> None:
    result = run_pyiot("graph", str(RELAY))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "stateDiagram-v2" in out
    for edge in (
        "offline --> connecting: connect",
        "idle --> query-relayState: read-relayState | poll-relayState",
        "query-relayState --> retry-query-relayState: expire [retries_left]",
        "retry-query-relayState --> query-relayState: resend",
    ):
        assert edge in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graph_svg_with_graphviz(tmp_path: Path) -> None:
    out = tmp_path / "relay.svg"
    result = run_pyiot("graph", str(RELAY), "--format", "svg", "-o", str(out))
    assert result.returncode == 0, result.stderr
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "RELAY?" in svg


def test_default_install_draws_dot_without_graphviz_programs(tmp_path: Path) -> None:
    """`pip install .` brings what dot text needs; Graphviz's programs only draw images."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("graphviz") for d in project["dependencies"])
    assert project["version"] == __version__ and tuple(map(int, __version__.split("."))) > (0, 1, 1)
    # A PATH with python alone: no `dot` to find.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    environment = clean_environment()
    environment["PATH"] = str(bin_dir)
    result = subprocess.run(
        [str(bin_dir / "python"), "-m", "pyiot", "graph", str(RELAY), "--format", "dot"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("digraph") and "query-relayState" in result.stdout


def test_graph_image_needs_an_output_file() -> None:
    result = run_pyiot("graph", str(RELAY), "--format", "png")
    assert result.returncode == 1
    assert "give -o FILE" in result.stderr


@pytest.mark.parametrize("source", ["iot", "compiled driver"])
def test_run_simulate_applies_desired_and_reports(cli, shadow_app, tmp_path, source) -> None:
    target = RELAY
    if source == "compiled driver":
        target = tmp_path / "relay_driver.py"
        assert run_pyiot("compile", str(RELAY), "-o", str(target)).returncode == 0
    run = cli("run", str(target), "--simulate", "--data", str(tmp_path / "data"))
    broker = run.wait_for(r"local broker: (mqtt://\S+)").group(1)
    run.wait_for(r"^ready")
    app = shadow_app(broker, "relayOne")

    app.set_desired(relayState=True)
    doc = app.wait_until(lambda d: reported(d).get("relayState") is True)
    run.wait_for(r"simulator: relay1\.relayState = true")
    # The handled desired key is cleared, so no delta is left behind.
    app.wait_until(lambda d: "relayState" not in desired(d))
    assert reported(doc)["pyiot"]["components"]["relay1"]["online"] is True

    # False is a value (the original pyIOT dropped it).
    app.set_desired(relayState=False)
    app.wait_until(lambda d: reported(d).get("relayState") is False)
    run.wait_for(r"simulator: relay1\.relayState = false")


def test_bad_desired_value_is_rejected_visibly(cli, shadow_app, tmp_path) -> None:
    run = cli("run", str(RELAY), "--simulate", "--data", str(tmp_path / "data"))
    broker = run.wait_for(r"local broker: (mqtt://\S+)").group(1)
    run.wait_for(r"^ready")
    app = shadow_app(broker, "relayOne")
    app.set_desired(relayState="maybe")
    doc = app.wait_until(lambda d: "rejected" in reported(d).get("pyiot", {}))
    rejection = reported(doc)["pyiot"]["rejected"]["relayState"]
    assert rejection["value"] == "maybe"
    assert "true or false" in rejection["reason"]
    run.wait_for(r"rejected desired relayState = 'maybe'")
    # Everything else keeps working, and a good value clears the rejection.
    app.set_desired(relayState=True)
    doc = app.wait_until(lambda d: reported(d).get("relayState") is True)
    app.wait_until(lambda d: "relayState" not in reported(d)["pyiot"].get("rejected", {}))


def test_device_side_change_reaches_reported(cli, shadow_app, tmp_path) -> None:
    sim = cli("simulate", str(RELAY), "--listen", "tcp://127.0.0.1:0")
    url = sim.wait_for(r"on (socket://\S+)").group(1)
    run = cli("run", str(RELAY), "--device", f"relay1={url}", "--data", str(tmp_path / "data"))
    broker = run.wait_for(r"local broker: (mqtt://\S+)").group(1)
    run.wait_for(r"^ready")
    app = shadow_app(broker, "relayOne")
    # Someone presses the relay's own button: the device announces it unprompted.
    sim.send("relay1.relayState=true")
    sim.wait_for(r"simulator: relay1\.relayState = true")
    app.wait_until(lambda d: reported(d).get("relayState") is True)
    sim.send("relayState=false")
    app.wait_until(lambda d: reported(d).get("relayState") is False)


def test_shadow_command_sets_and_gets_through_a_running_broker(cli, tmp_path) -> None:
    broker_process = cli("broker", "--port", "0", "--data", str(tmp_path / "data"))
    broker = broker_process.wait_for(r"broker: (mqtt://\S+)").group(1)
    sim = cli("simulate", str(RELAY), "--pty")
    pty = sim.wait_for(r"on (/dev/\S+)").group(1)
    run = cli("run", str(RELAY), "--broker", broker, "--device", f"relay1={pty}")
    run.wait_for(r"^ready")

    result = run_pyiot("shadow", "set", "relayOne", "relayState=true", "--broker", broker)
    assert result.returncode == 0, result.stderr
    sim.wait_for(r"simulator: relay1\.relayState = true")

    def settled() -> bool:
        got = run_pyiot("shadow", "get", "relayOne", "--broker", broker)
        assert got.returncode == 0, got.stderr
        document = json.loads(got.stdout)
        return document["reported"].get("relayState") is True and not document["delta"]

    wait_until(settled, what="relayState reported, no delta left")


def test_desired_already_satisfied_is_cleared(cli, shadow_app, tmp_path) -> None:
    """No delta comes for a wish the device already meets; it must not linger in desired,
    or it would switch the relay back the next time someone presses its button."""
    sim = cli("simulate", str(RELAY))
    url = sim.wait_for(r"on (socket://\S+)").group(1)
    run = cli("run", str(RELAY), "--device", f"relay1={url}", "--data", str(tmp_path / "data"))
    broker = run.wait_for(r"local broker: (mqtt://\S+)").group(1)
    run.wait_for(r"^ready")
    app = shadow_app(broker, "relayOne")
    app.set_desired(relayState=False)  # the simulated relay starts off
    app.wait_until(lambda d: "relayState" in desired(d))
    app.wait_until(lambda d: "relayState" not in desired(d))
    sim.send("relay1.relayState=true")  # pressed at the device
    app.wait_until(lambda d: reported(d).get("relayState") is True)
    sim.wait_for(r"relayState = true")
    assert not any("relayState = false" in line for line in sim.lines)


# ------------------------------------------------------------------ parsing, help and usage
COMMANDS = ["compile", "graph", "simulate", "broker", "run", "shadow"]
MONOPRICE = ROOT / "devices" / "monoprice_mpr6zhmaut.iot"
ZONES = ["kitchen", "dining", "living", "patio", "master", "office"]


def test_options_go_anywhere_among_the_arguments(cli, tmp_path: Path) -> None:
    """As people type it: the thing, then --broker, then the values."""
    broker_process = cli("broker", "--port", "0", "--data", str(tmp_path / "data"))
    broker = broker_process.wait_for(r"broker: (mqtt://\S+)").group(1)
    result = run_pyiot("shadow", "set", "relayOne", "--broker", broker, "relayState=true")
    assert result.returncode == 0, result.stderr
    assert 'desired {"relayState": true} sent to relayOne' in result.stdout
    # A named shadow's name, then values, then the broker, all mixed.
    result = run_pyiot(
        "shadow", "set", "--shadow", "settings", "relayOne", "mode=2", "--broker", broker, "x=1"
    )
    assert result.returncode == 0, result.stderr
    got = run_pyiot("shadow", "--broker", broker, "get", "relayOne", "--shadow", "settings")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["desired"] == {"mode": 2, "x": 1}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_wrong_flag_prints_that_commands_usage(command: str) -> None:
    given = {"broker": [], "shadow": ["get", "relayOne"]}.get(command, [str(RELAY)])
    result = run_pyiot(command, *given, "--no-such-flag")
    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: pyiot {command} ")
    assert f"pyiot {command}: error: unrecognized arguments: --no-such-flag" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_shows_examples_and_help_for_every_argument(command: str) -> None:
    result = run_pyiot(command, "--help")
    assert result.returncode == 0, result.stderr
    examples = result.stdout.split("examples:\n", 1)[1].splitlines()
    assert examples and all(f"{line} ".startswith(f"  pyiot {command} ") for line in examples)
    # Every positional and option says what it is for.
    subparsers = next(a for a in _parser()._actions if a.choices and command in a.choices)
    for action in subparsers.choices[command]._actions:
        assert action.help, f"pyiot {command}: {action.option_strings or action.dest} has no help"


def test_simulate_listen_on_an_impossible_port_is_one_line() -> None:
    result = run_pyiot("simulate", str(RELAY), "--listen", "tcp://127.0.0.1:99999")
    assert result.returncode == 1
    assert result.stderr == "pyiot: error: tcp://127.0.0.1:99999: a port is 0 to 65535 (0: any free port)\n"


def test_simulate_hint_for_a_shared_port_brings_every_zone_online(cli, shadow_app, tmp_path) -> None:
    """Six zones on one port: the printed command points the port, so all six come online."""
    sim = cli("simulate", str(MONOPRICE))
    hint = sim.wait_for(r"connect with: pyiot run (\S+) (.+)$")
    assert hint.group(1) == str(MONOPRICE)
    options = shlex.split(hint.group(2))
    assert options[0] == "--device" and options[1].startswith("amp=socket://")
    run = cli("run", hint.group(1), *options, "--data", str(tmp_path / "data"))
    broker = run.wait_for(r"local broker: (mqtt://\S+)").group(1)
    app = shadow_app(broker, "wholeHouse")

    def all_online(document: dict) -> bool:
        components = reported(document).get("pyiot", {}).get("components", {})
        return all(components.get(zone, {}).get("online") for zone in ZONES)

    app.wait_until(all_online, timeout=PATIENCE)
    assert not any("cannot open" in line for line in run.lines)
