"""`pyiot run --homeassistant` against a real mosquitto, seen from Home Assistant's side.

Home Assistant is played by a plain MQTT client that reads what discovery needs (configs,
states, availability) and publishes commands and its birth message; the application is the
shadow client of tests/e2e. The devices are pyiot's simulators.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import RELAY, ROOT, desired, reported, run_pyiot
from tests.homeassistant.conftest import EVERYTHING, entities_of, stop_cleanly
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

SWITCH = "homeassistant/switch/pyiot_relayOne/relay1_relayState/config"
STATE = "pyiot/relayOne/relay1/relayState/state"
COMMAND = "pyiot/relayOne/relay1/relayState/set"
COMPONENT = "pyiot/relayOne/relay1/availability"
GATEWAY = "pyiot/_gateway/relayOne/availability"


def start_broker(cli, tmp_path: Path) -> str:
    """`pyiot broker`: mosquitto and the shadow service, outliving the runs of a test."""
    broker = cli("broker", "--port", "0", "--data", str(tmp_path / "data"))
    return broker.wait_for(r"broker: (mqtt://\S+)").group(1)


def test_home_assistant_sees_the_relay_and_drives_it_through_the_shadow(
    cli, shadow_app, home_assistant, tmp_path
) -> None:
    url = start_broker(cli, tmp_path)
    sim = cli("simulate", str(RELAY), "--listen", "tcp://127.0.0.1:0")
    device = sim.wait_for(r"on (socket://\S+)").group(1)
    run = cli("run", str(RELAY), "--broker", url, "--device", f"relay1={device}", "--homeassistant")
    run.wait_for(r"home assistant: 2 entities under homeassistant/ on mqtt://")
    run.wait_for(r"^ready")
    ha = home_assistant(url)
    app = shadow_app(url, "relayOne")

    # Discovery: retained configs at the documented topics; states and availability retained.
    config = ha.config(SWITCH)
    assert ha.seen(SWITCH)[0].retained
    assert (config["state_topic"], config["command_topic"]) == (STATE, COMMAND)
    assert config["device"]["name"] == "relay1" and config["device"]["model_id"] == "Relay"
    gateway = ha.config("homeassistant/binary_sensor/pyiot_relayOne/gateway/config")
    assert gateway["device"]["identifiers"] == [config["device"]["via_device"]]
    ha.wait_latest(GATEWAY, "online")
    ha.wait_latest(COMPONENT, "online")
    ha.wait_latest(STATE, "false")
    for topic, payload in ((GATEWAY, "online"), (COMPONENT, "online"), (STATE, "false")):
        assert last_retained(url, topic, home_assistant) == payload

    # The device changes by itself (its own button): the state follows.
    sim.send("relay1.relayState=true")
    ha.wait_latest(STATE, "true")

    # A command from Home Assistant becomes a desired change: device, shadow and state follow,
    # and the handled desired key is cleared as for any application's wish.
    ha.publish(COMMAND, "false")
    sim.wait_for(r"simulator: relay1\.relayState = false")
    app.wait_until(lambda d: reported(d).get("relayState") is False and not desired(d))
    ha.wait_latest(STATE, "false")

    # An invalid command is rejected by the thing's rules, visibly, like a bad desired value.
    ha.publish(COMMAND, "maybe")
    doc = app.wait_until(lambda d: "relayState" in reported(d)["pyiot"].get("rejected", {}))
    assert reported(doc)["pyiot"]["rejected"]["relayState"]["value"] == "maybe"
    run.wait_for(r"rejected desired relayState = 'maybe'")

    # Home Assistant restarts and announces itself: configs and states come again at once.
    ha.clear()
    ha.publish("homeassistant/status", "online")
    ha.wait_for(STATE, "false", retained=False)
    ha.wait_for(SWITCH, retained=False)

    # The device goes away: its entities become unavailable; pyiot itself is still there.
    sim.stop()
    ha.wait_latest(COMPONENT, "offline")
    assert ha.latest(GATEWAY) == "online"


def last_retained(url: str, topic: str, home_assistant, prefix: str = "homeassistant"):
    """What a client subscribing now gets for `topic` (None: nothing retained)."""
    fresh = home_assistant(url, prefix)
    probe = f"pyiot/test/probe/{os.getpid()}"
    fresh.client.subscribe(probe, qos=1)
    fresh.publish(probe, "end")  # delivered after the retained messages of the subscription
    fresh.wait_for(probe, "end")
    found = fresh.seen(topic, retained=True)
    return found[-1].payload if found else None


def test_entities_become_unavailable_when_pyiot_stops_or_dies(cli, home_assistant, tmp_path):
    url = start_broker(cli, tmp_path)
    ha = home_assistant(url)
    run = cli("run", str(RELAY), "--simulate", "--broker", url, "--homeassistant")
    run.wait_for(r"^ready")
    ha.wait_latest(GATEWAY, "online")

    # A clean stop says offline itself.
    assert stop_cleanly(run) == 0, "\n".join(run.lines)
    ha.wait_latest(GATEWAY, "offline")
    assert last_retained(url, GATEWAY, home_assistant) == "offline"

    # Killed outright: the broker publishes pyiot's last will.
    run = cli("run", str(RELAY), "--simulate", "--broker", url, "--homeassistant")
    run.wait_for(r"^ready")
    ha.wait_latest(GATEWAY, "online")
    run.process.send_signal(signal.SIGKILL)
    run.process.wait()
    ha.wait_latest(GATEWAY, "offline")
    assert last_retained(url, GATEWAY, home_assistant) == "offline"


def test_a_property_removed_from_the_file_disappears_at_the_next_start(
    cli, home_assistant, tmp_path
) -> None:
    url = start_broker(cli, tmp_path)
    first = tmp_path / "panel.iot"
    first.write_text(EVERYTHING.read_text())
    # The config file turns Home Assistant on, with its own prefix.
    config = tmp_path / "config.toml"
    config.write_text('homeassistant = true\ndiscovery_prefix = "ha"\n')
    ha = home_assistant(url, prefix="ha")
    firmware = "ha/sensor/pyiot_studio/panel_firmware/config"
    label = "ha/text/pyiot_studio/panel_label/config"

    run = cli("run", str(first), "--simulate", "--broker", url, "--config", str(config))
    run.wait_for(r"home assistant: 13 entities under ha/")
    run.wait_for(r"^ready")
    ha.wait_for(firmware)
    ha.wait_for(label)
    assert stop_cleanly(run) == 0, "\n".join(run.lines)

    # The same file without its `firmware` property.
    text = first.read_text()
    start = text.index("    property firmware")
    end = text.index("\n    }\n", start) + len("\n    }\n")
    first.write_text(text[:start] + text[end:])
    ha.clear()
    run = cli("run", str(first), "--simulate", "--broker", url, "--config", str(config))
    run.wait_for(r"home assistant: 12 entities under ha/ on \S+, 1 removed")
    ha.wait_for(firmware, "")  # an empty retained config: Home Assistant removes the entity
    ha.wait_for(label)
    assert last_retained(url, firmware, home_assistant, "ha") is None
    assert json.loads(last_retained(url, label, home_assistant, "ha"))["unique_id"] == (
        "pyiot_studio_panel_label"
    )


def test_aws_iot_core_alone_is_refused_in_one_line(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    for path in (cert, key):
        path.write_text("not used: refused before connecting\n")
    result = run_pyiot(
        "run", str(RELAY), "--simulate", "--homeassistant",
        "--endpoint", "example-ats.iot.eu-west-1.amazonaws.com",
        "--cert", str(cert), "--key", str(key),
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--homeassistant-broker mqtt://HOST:PORT" in lines[0]
    assert "Traceback" not in result.stderr


def test_an_unreachable_home_assistant_broker_is_one_line(tmp_path: Path) -> None:
    result = run_pyiot(
        "run", str(RELAY), "--simulate", "--data", str(tmp_path / "data"),
        "--homeassistant-broker", "mqtt://127.0.0.1:1",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "pyiot: error: cannot reach the Home Assistant broker at mqtt://127.0.0.1:1: "
        "connection refused or no route"
    ]


def test_commands_reach_nested_shadow_keys_on_a_shared_port(
    cli, shadow_app, home_assistant, tmp_path
) -> None:
    """Six amplifier zones on one serial line, each nested in the shadow (`patio.volume`):
    each zone is its own device in Home Assistant and a command lands at its shadow path."""
    url = start_broker(cli, tmp_path)
    amplifier = ROOT / "devices" / "monoprice_mpr6zhmaut.iot"
    run = cli("run", str(amplifier), "--simulate", "--broker", url, "--homeassistant")
    run.wait_for(r"^ready")
    ha = home_assistant(url)
    app = shadow_app(url, "wholeHouse")
    patio = ha.config("homeassistant/number/pyiot_wholeHouse/patio_volume/config")
    assert (patio["device"]["name"], patio["min"], patio["max"]) == ("patio", 0, 38)

    kitchen = ha.wait_for("pyiot/wholeHouse/kitchen/volume/state").payload
    assert kitchen != "20"
    ha.publish("pyiot/wholeHouse/patio/volume/set", "20")
    app.wait_until(lambda d: reported(d).get("patio", {}).get("volume") == 20 and not desired(d))
    ha.wait_latest("pyiot/wholeHouse/patio/volume/state", "20")
    assert ha.latest("pyiot/wholeHouse/kitchen/volume/state") == kitchen  # only the patio


def test_a_command_meets_the_devices_modes(cli, shadow_app, home_assistant, tmp_path) -> None:
    """The Epson refuses mute while its lamp is off (`reject set source, mute unless on,
    warming`): a mute from Home Assistant is refused by that rule, visibly, as a shadow
    desired change would be; a power command from the select starts the projector's warm-up."""
    url = start_broker(cli, tmp_path)
    projector = ROOT / "devices" / "epson_escvp21.iot"
    run = cli("run", str(projector), "--simulate", "--broker", url, "--homeassistant")
    run.wait_for(r"^ready")
    ha = home_assistant(url)
    app = shadow_app(url, "theatre")
    power = ha.config("homeassistant/select/pyiot_theatre/projector_power/config")
    assert power["options"][:2] == ["standby", "on"]
    ha.wait_latest("pyiot/theatre/projector/power/state", "standby")

    ha.publish("pyiot/theatre/projector/mute/set", "true")
    doc = app.wait_until(lambda d: "mute" in reported(d)["pyiot"].get("rejected", {}))
    assert "the lamp is off" in reported(doc)["pyiot"]["rejected"]["mute"]["reason"]
    run.wait_for(r"rejected desired mute = True")

    # PWR ON: the mode machine says warming (on only after the lamp's 40 s or its report).
    ha.publish("pyiot/theatre/projector/power/set", "on")
    ha.wait_latest("pyiot/theatre/projector/power/state", "warming")
    # The desired power stays until PWR ON's colon, which comes when the warm-up is over.
    app.wait_until(lambda d: reported(d).get("power") == "warming")


def test_a_large_gateway_publishes_every_config(cli, home_assistant, tmp_path) -> None:
    """Twenty panels of every kind of property: 241 configs, each retained at its topic."""
    url = start_broker(cli, tmp_path)
    text = EVERYTHING.read_text()
    device = text[: text.index("thing studio")]
    components = "\n".join(f'    component panel{n}: Panel on serial "/dev/ttyS{n}"' for n in range(20))
    big = tmp_path / "big.iot"
    nested = " ".join(f"panel{n}.* in panel{n}" for n in range(20))
    big.write_text(f"{device}thing studio {{\n{components}\n    shadow {{ {nested} }}\n}}\n")
    run = cli("run", str(big), "--simulate", "--broker", url, "--homeassistant")
    run.wait_for(r"home assistant: 241 entities under homeassistant/")
    run.wait_for(r"^ready")
    ha = home_assistant(url)
    configs = {e.topic("homeassistant") for e in entities_of(big)}
    assert len(configs) == 241
    wait_until(lambda: configs <= {m.topic for m in ha.messages}, what="every config")
    assert all(m.retained for m in ha.messages if m.topic in configs)
