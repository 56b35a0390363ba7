"""A real Home Assistant core (2025.4, headless) finds pyiot's relay with no YAML, shows its
state, drives it, and marks it unavailable when pyiot stops.

Home Assistant runs from its own Python 3.13 (see conftest.ha_python) with a config folder
made here: the HTTP API on a free loopback port, the MQTT integration's config entry pointing at
the test's broker (as the UI would store it), onboarding done, and a user made with
`hass --script auth`. The test reads entities and devices through Home Assistant's REST API
(states, templates) and presses its switch through a service call, as a dashboard would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RELAY, reported
from tests.homeassistant.conftest import ha_python, stop_cleanly
from tests.waiting import wait_until

# Home Assistant's first start on a loaded machine takes a while (it only bounds a hang).
STARTUP = 240.0
pytestmark = pytest.mark.timeout(600)

ENTITY = "switch.relay1_relaystate"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_config(folder: Path, http_port: int, mqtt_port: int) -> None:
    (folder / ".storage").mkdir(parents=True)
    (folder / "configuration.yaml").write_text(
        f"http:\n  server_host: 127.0.0.1\n  server_port: {http_port}\napi:\n"
    )
    entry = {
        "entry_id": "01PYIOTTESTMQTTENTRY000000",
        "version": 1,
        "minor_version": 2,
        "domain": "mqtt",
        "title": "pyiot test broker",
        "data": {"broker": "127.0.0.1", "port": mqtt_port},
        "options": {},
        "source": "user",
        "unique_id": None,
        "disabled_by": None,
        "subentries": [],
    }
    storage = {
        "core.config_entries": {"entries": [entry]},
        "onboarding": {"done": ["user", "core_config", "analytics", "integration"]},
    }
    for key, data in storage.items():
        document = {"version": 1, "minor_version": 1, "key": key, "data": data}
        (folder / ".storage" / key).write_text(json.dumps(document))


class HomeAssistantApi:
    """Home Assistant's REST API, logged in as the test's user."""

    def __init__(self, base: str, username: str, password: str):
        self.base = base
        client = f"{base}/"
        flow = self._post("/auth/login_flow", {
            "client_id": client, "handler": ["homeassistant", None], "redirect_uri": client,
        })  # fmt: skip
        done = self._post(f"/auth/login_flow/{flow['flow_id']}", {
            "client_id": client, "username": username, "password": password,
        })  # fmt: skip
        token = self._post(
            "/auth/token",
            {"grant_type": "authorization_code", "code": done["result"], "client_id": client},
            form=True,
        )
        self.token = token["access_token"]

    def _post(self, path: str, data: dict, form: bool = False, token: str | None = None) -> Any:
        body = urllib.parse.urlencode(data).encode() if form else json.dumps(data).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded" if form else "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base + path, body, headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        return json.loads(text) if text.startswith(("{", "[")) else text

    def states(self) -> dict[str, dict]:
        request = urllib.request.Request(
            f"{self.base}/api/states", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return {s["entity_id"]: s for s in json.load(response)}

    def state(self, entity: str) -> str | None:
        found = self.states().get(entity)
        return found["state"] if found else None

    def template(self, text: str) -> str:
        return self._post("/api/template", {"template": text}, token=self.token)

    def call(self, domain: str, service: str, **data: Any) -> None:
        self._post(f"/api/services/{domain}/{service}", data, token=self.token)


def api_answers(base: str) -> bool:
    try:
        urllib.request.urlopen(f"{base}/api/", timeout=5)
    except urllib.error.HTTPError as err:
        return err.code == 401  # up, and asking for a login
    except OSError:
        return False
    return True


@pytest.fixture
def home_assistant_core(tmp_path: Path) -> Iterator[Any]:
    """Start Home Assistant on a broker port given later: returns start(mqtt_port) -> base."""
    python = ha_python("homeassistant", "hass_frontend", "paho")
    hass = str(Path(python).parent / "hass")
    processes: list[subprocess.Popen] = []
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    def start(mqtt_port: int) -> HomeAssistantApi:
        folder = tmp_path / "ha-config"
        http_port = free_port()
        make_config(folder, http_port, mqtt_port)
        subprocess.run(
            [hass, "--script", "auth", "-c", str(folder), "add", "tester", "pyiot-test-secret"],
            check=True, capture_output=True, timeout=120, env=environment,
        )  # fmt: skip
        log = open(tmp_path / "hass.log", "w")  # noqa: SIM115 - closed with the process
        processes.append(
            subprocess.Popen(
                [hass, "-c", str(folder), "--skip-pip"], stdout=log, stderr=subprocess.STDOUT,
                env=environment,
            )  # fmt: skip
        )
        base = f"http://127.0.0.1:{http_port}"
        wait_until(lambda: api_answers(base) or processes[-1].poll() is not None, STARTUP,
                   "Home Assistant's API")  # fmt: skip
        assert processes[-1].poll() is None, (tmp_path / "hass.log").read_text()[-3000:]
        return HomeAssistantApi(base, "tester", "pyiot-test-secret")

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_real_home_assistant_finds_shows_and_drives_the_relay(
    cli, shadow_app, home_assistant_core, tmp_path: Path
) -> None:
    broker = cli("broker", "--port", "0", "--data", str(tmp_path / "data"))
    url = broker.wait_for(r"broker: (mqtt://\S+)").group(1)
    api = home_assistant_core(int(url.rsplit(":", 1)[1]))
    run = cli("run", str(RELAY), "--simulate", "--broker", url, "--homeassistant")
    run.wait_for(r"^ready")
    app = shadow_app(url, "relayOne")

    # Discovered with no YAML: the switch, on the component's device, under the thing's.
    wait_until(lambda: api.state(ENTITY) == "off", STARTUP, f"{ENTITY} off")
    device = f"device_id('{ENTITY}')"
    assert api.template(f"{{{{ device_attr({device}, 'name') }}}}") == "relay1"
    assert api.template(f"{{{{ device_attr({device}, 'model') }}}}") == (
        "Single-channel serial relay"
    )
    via = f"device_attr({device}, 'via_device_id')"
    assert api.template(f"{{{{ device_attr({via}, 'name') }}}}") == "relayOne"
    assert api.state("binary_sensor.relayone_pyiot_gateway") == "on"

    # Turned on from Home Assistant: through the shadow to the device, and back as state.
    api.call("switch", "turn_on", entity_id=ENTITY)
    run.wait_for(r"simulator: relay1\.relayState = true")
    app.wait_until(lambda d: reported(d).get("relayState") is True)
    wait_until(lambda: api.state(ENTITY) == "on", what=f"{ENTITY} on")

    # pyiot stops: Home Assistant shows the relay unavailable, not a stale "on".
    assert stop_cleanly(run) == 0
    wait_until(lambda: api.state(ENTITY) == "unavailable", what=f"{ENTITY} unavailable")
