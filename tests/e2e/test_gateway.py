"""One `pyiot run a.iot b.iot`: one MQTT connection, each thing its own shadow; and a desired
change made while pyiot is stopped is applied when it starts again."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyiot.local import LocalStack
from tests.e2e.conftest import RELAY, ROOT, desired, pyiot_command, reported

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(port=None, data_dir=tmp_path / "data") as running:
        yield running


def relay_file(directory: Path, thing: str, file_name: str) -> Path:
    """devices/relay.iot with another thing name (the component stays `relay1`)."""
    path = directory / file_name
    path.write_text(RELAY.read_text().replace("thing relayOne", f"thing {thing}"))
    return path


def pyiot_clients(stack: LocalStack) -> set[str]:
    """Client ids of pyiot's own shadow connections that the broker saw connect."""
    log = stack.mosquitto.log_path.read_text()
    ids = set(re.findall(r"New client connected from \S+ as (\S+) ", log))
    return {i for i in ids if i.startswith("pyiot-") and not i.startswith("pyiot-shadow-service")}


def test_two_files_one_connection_two_shadows(cli, shadow_app, stack, tmp_path) -> None:
    kitchen = relay_file(tmp_path, "kitchen", "kitchen.iot")
    porch = relay_file(tmp_path, "porch", "porch.iot")
    kitchen_app = shadow_app(stack.url, "kitchen")
    porch_app = shadow_app(stack.url, "porch")
    run = cli("run", str(kitchen), str(porch), "--simulate", "--broker", stack.url)
    run.wait_for(r"^thing kitchen: relay1 on socket://")
    run.wait_for(r"^thing porch: relay1 on socket://")
    run.wait_for(r"^ready")
    kitchen_app.set_desired(relayState=True)
    kitchen_app.wait_until(lambda d: reported(d).get("relayState") is True and not desired(d))
    porch_app.set_desired(relayState=False)
    porch_app.wait_until(lambda d: reported(d).get("relayState") is False and not desired(d))
    # Each shadow holds only its own thing's state.
    assert porch_app.latest["state"]["reported"]["relayState"] is False
    assert pyiot_clients(stack) and len(pyiot_clients(stack)) == 1


def test_thing_names_must_be_unique_across_files(tmp_path: Path) -> None:
    first = relay_file(tmp_path, "relayOne", "first.iot")
    second = relay_file(tmp_path, "relayOne", "second.iot")
    result = subprocess.run(
        pyiot_command("run", str(first), str(second), "--simulate"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 1
    line = next(
        number
        for number, text in enumerate(first.read_text().splitlines(), 1)
        if text.startswith("thing relayOne")
    )
    declared = re.escape(f"pyiot: error: thing 'relayOne' is declared twice ({first}:{line}:")
    assert re.match(rf"{declared}\d+ and {re.escape(str(second))}:{line}:\d+\)", result.stderr), (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_desired_set_while_pyiot_is_stopped_is_applied_on_start(cli, shadow_app, stack, tmp_path):
    sim = cli("simulate", str(RELAY))
    device = sim.wait_for(r"on (socket://\S+)").group(1)
    args = ("run", str(RELAY), "--device", f"relay1={device}", "--broker", stack.url)
    app = shadow_app(stack.url, "relayOne")  # watching before pyiot's first report
    run = cli(*args)
    run.wait_for(r"^ready")
    app.wait_until(lambda d: reported(d).get("relayState") is False)
    assert run.stop() == 0
    app.set_desired(relayState=True)
    app.wait_until(lambda d: desired(d).get("relayState") is True)
    cli(*args)
    app.wait_until(lambda d: reported(d).get("relayState") is True and not desired(d))
    sim.wait_for(r"simulator: relay1\.relayState = true")
