"""One local stack per data folder, found through the folder and never by guessing a port.

Real `pyiot` processes and real mosquitto brokers; a plain mosquitto started here stands in
for the system `mosquitto.service` that Debian and Ubuntu run on 1883.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyiot.local import Mosquitto
from pyiot.local.mosquitto import free_port
from tests.e2e.conftest import RELAY, clean_environment, run_pyiot
from tests.waiting import PATIENCE

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def system_mosquitto(mosquitto_path: str, tmp_path: Path) -> Iterator[Mosquitto]:
    """A plain mosquitto with no shadow service, like Debian's on 1883 (here on 1883 when it
    is free, else on any port)."""
    port = 1883 if _free(1883) else free_port(None)
    with Mosquitto(port, workdir=tmp_path / "system-broker") as broker:
        yield broker


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def one_line_error(result) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyiot: error: "), result.stderr
    return lines[0]


def test_run_and_shadow_use_the_broker_of_their_data_folder(cli, tmp_path: Path) -> None:
    """The issue's case: with `pyiot broker` running, `pyiot run` used to start a second
    stack on the same SQLite file and `pyiot shadow set` never reached the gateway."""
    data = tmp_path / "data"
    broker = cli("broker", "--port", "0", "--data", str(data))
    url = broker.wait_for(r"^broker: (mqtt://\S+)", timeout=PATIENCE).group(1)
    record = json.loads((data / "stack.json").read_text())
    assert record["url"] == url and record["pid"] == broker.process.pid
    assert (data / "stack.json").stat().st_mode & 0o777 == 0o600

    run = cli("run", str(RELAY), "--simulate", "--data", str(data))
    found = run.wait_for(r"^local stack: (mqtt://\S+) \(pid (\d+)", timeout=PATIENCE)
    assert found.group(1) == url and int(found.group(2)) == broker.process.pid
    run.wait_for(rf"^ready; try: pyiot shadow get relayOne --data {data}$", timeout=PATIENCE)
    assert not any(line.startswith("local broker:") for line in run.lines)  # none started

    result = run_pyiot("shadow", "set", "relayOne", "relayState=true", "--data", str(data))
    assert result.returncode == 0, result.stderr
    run.wait_for(r"^simulator: relay1\.relayState = true$", timeout=PATIENCE)
    assert run.stop() == 0
    # The broker's stack is still the folder's, untouched by the run that used it.
    assert json.loads((data / "stack.json").read_text())["pid"] == broker.process.pid
    assert broker.stop() == 0
    assert not (data / "stack.json").exists()


def test_a_second_run_uses_the_stack_the_first_started(cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = cli("run", str(RELAY), "--simulate", "--data", str(data))
    url = first.wait_for(r"^local broker: (mqtt://\S+)", timeout=PATIENCE).group(1)
    first.wait_for("^ready", timeout=PATIENCE)
    lamp = Path(__file__).resolve().parents[2] / "devices" / "lightbulb.iot"
    second = cli("run", str(lamp), "--simulate", "--data", str(data))
    found = second.wait_for(r"^local stack: (mqtt://\S+) \(pid (\d+)", timeout=PATIENCE)
    assert found.group(1) == url and int(found.group(2)) == first.process.pid
    second.wait_for("^ready", timeout=PATIENCE)
    assert second.stop() == 0
    assert first.stop() == 0


def test_two_runs_started_together_end_up_on_one_stack(cli, tmp_path: Path) -> None:
    """Both race for the folder's lock: the loser uses the winner's stack."""
    data = tmp_path / "data"
    lamp = Path(__file__).resolve().parents[2] / "devices" / "lightbulb.iot"
    runs = [cli("run", str(file), "--simulate", "--data", str(data)) for file in (RELAY, lamp)]
    for run in runs:
        run.wait_for("^ready", timeout=PATIENCE)
    started = [r for r in runs if any(x.startswith("local broker:") for x in r.lines)]
    found = [r for r in runs if any(x.startswith("local stack:") for x in r.lines)]
    assert len(started) == 1 and len(found) == 1
    url = started[0].wait_for(r"^local broker: (mqtt://\S+)").group(1)
    assert found[0].wait_for(r"^local stack: (mqtt://\S+)").group(1) == url
    assert found[0].stop() == 0
    assert started[0].stop() == 0


def test_a_second_broker_on_one_folder_is_refused_naming_the_first(cli, tmp_path) -> None:
    data = tmp_path / "data"
    broker = cli("broker", "--port", "0", "--data", str(data))
    url = broker.wait_for(r"^broker: (mqtt://\S+)", timeout=PATIENCE).group(1)
    line = one_line_error(run_pyiot("broker", "--port", "0", "--data", str(data)))
    assert f"a local stack already serves {data}: {url} (pid {broker.process.pid})" in line
    assert broker.process.poll() is None  # the first one runs on, unharmed


def test_shadow_with_no_stack_says_so_in_one_line(tmp_path: Path) -> None:
    line = one_line_error(run_pyiot("shadow", "get", "relayOne", "--data", str(tmp_path)))
    assert f"no local stack serves {tmp_path}: start one with `pyiot broker`" in line


def test_a_stale_record_is_never_followed_to_a_port(system_mosquitto, tmp_path) -> None:
    """A record left by a killed stack names a port another broker holds now: the folder's
    lock is free, so pyiot knows the stack is gone and never talks to that broker."""
    (tmp_path / "stack.json").write_text(
        json.dumps(
            {
                "url": system_mosquitto.url,
                "pid": 999999,
                "mosquitto_pid": None,
                "store": str(tmp_path / "shadows.sqlite3"),
                "login": False,
                "started": 0,
            }
        )
    )
    (tmp_path / "stack.lock").touch()
    line = one_line_error(run_pyiot("shadow", "get", "relayOne", "--data", str(tmp_path)))
    assert "no local stack serves" in line


def test_a_broker_with_no_shadow_service_is_named_at_once(system_mosquitto) -> None:
    result = run_pyiot("shadow", "get", "relayOne", "--broker", system_mosquitto.url)
    line = one_line_error(result)
    assert line == (
        f"pyiot: error: no Device Shadow service answers on {system_mosquitto.url}: is it "
        "pyiot's local stack (`pyiot broker`) or AWS IoT Core?"
    )


def test_run_never_takes_the_system_mosquitto_for_its_stack(cli, system_mosquitto, tmp_path):
    """Whoever holds 1883 (the stand-in system broker, or anything else), `pyiot run` starts
    its own stack on another port and says why."""
    assert not _free(1883)
    run = cli("run", str(RELAY), "--simulate", "--data", str(tmp_path / "data"))
    found = run.wait_for(
        r"^local broker: mqtt://127\.0\.0\.1:(\d+) .*\(port 1883 is in use", timeout=PATIENCE
    )
    assert int(found.group(1)) != 1883
    run.wait_for("^ready", timeout=PATIENCE)
    assert run.stop() == 0


def test_an_explicit_port_that_is_taken_is_an_error(system_mosquitto, tmp_path) -> None:
    port = system_mosquitto.port
    line = one_line_error(run_pyiot("broker", "--port", str(port), "--data", str(tmp_path)))
    assert f"port {port} on 127.0.0.1 is in use by another program" in line
    assert not (tmp_path / "stack.json").exists()


def test_no_port_means_1883_if_free(cli, mosquitto_path, tmp_path) -> None:
    if not _free(1883):
        pytest.skip("port 1883 is taken on this machine (the other case is tested above)")
    broker = cli("broker", "--data", str(tmp_path / "data"))
    found = broker.wait_for(r"^broker: (mqtt://\S+)", timeout=PATIENCE)
    assert found.group(1) == "mqtt://127.0.0.1:1883"
    assert broker.stop() == 0


def test_shadow_finds_the_stack_of_the_default_data_folder(cli, tmp_path) -> None:
    env = {"PYIOT_DATA_DIR": str(tmp_path / "default")}
    broker = cli("broker", "--port", "0", env=env)
    broker.wait_for("^broker:", timeout=PATIENCE)
    result = subprocess.run(
        [sys.executable, "-m", "pyiot", "shadow", "set", "lamp", "on=true"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean_environment(), **env},
        cwd=os.getcwd(),
    )
    assert result.returncode == 0, result.stderr
    assert broker.stop() == 0


@pytest.mark.parametrize("limits", [True, False], ids=["aws-limits", "no-aws-limits"])
def test_broker_throttles_like_aws_unless_told_not_to(cli, tmp_path: Path, limits) -> None:
    from tests.local.conftest import MqttProbe

    flag = [] if limits else ["--no-aws-limits"]
    broker = cli("broker", "--port", "0", "--data", str(tmp_path / "data"), *flag)
    url = broker.wait_for(r"^broker: (mqtt://\S+)", timeout=PATIENCE).group(1)
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    probe = MqttProbe(host, int(port))
    try:
        base = "$aws/things/flood/shadow"
        probe.subscribe(f"{base}/update/accepted", f"{base}/update/rejected")
        for n in range(50):
            probe.publish(f"{base}/update", {"state": {"reported": {"n": n}}})
        replies = (f"{base}/update/accepted", f"{base}/update/rejected")
        answers = [probe.expect_any(replies, timeout=PATIENCE)[1] for _ in range(50)]
    finally:
        probe.close()
    throttled = [a for a in answers if a.get("code") == 429]
    assert bool(throttled) is limits, answers[-1]
