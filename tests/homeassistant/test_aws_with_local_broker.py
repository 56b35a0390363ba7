"""AWS IoT Core for the shadows, a local broker for Home Assistant: commands from Home Assistant
still go into the (AWS) shadow. "AWS" is mosquitto with a TLS listener requiring client
certificates, reached through the same awsiotsdk builder as the real endpoint."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyiot.local import LocalStack, TlsFiles
from tests.e2e.conftest import RELAY, desired, reported
from tests.shadow.certs import Pki, make_pki

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), client_name="relayOne")


@pytest.fixture(scope="module")
def aws(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    tls = TlsFiles(pki.ca, pki.server.cert, pki.server.key)
    with LocalStack(
        port=None, data_dir=tmp_path_factory.mktemp("aws"), tls=tls, tls_port=None
    ) as stack:
        yield stack


def test_home_assistant_on_its_own_broker_drives_the_aws_shadow(
    cli, shadow_app, home_assistant, aws, pki, tmp_path: Path, monkeypatch
) -> None:
    for key in [k for k in os.environ if k.startswith("PYIOT_")]:
        monkeypatch.delenv(key)
    local = cli("broker", "--port", "0", "--data", str(tmp_path / "ha-broker"))
    ha_url = local.wait_for(r"broker: (mqtt://\S+)").group(1)
    run = cli(
        "run", str(RELAY), "--simulate",
        "--endpoint", f"localhost:{aws.tls_port}",
        "--cert", str(pki.client.cert), "--key", str(pki.client.key), "--ca", str(pki.ca),
        "--homeassistant-broker", ha_url,
        env={"XDG_CONFIG_HOME": str(tmp_path / "config-home")},
    )  # fmt: skip
    run.wait_for(rf"home assistant: 2 entities under homeassistant/ on {ha_url}")
    run.wait_for(r"^ready")
    ha = home_assistant(ha_url)
    app = shadow_app(aws.url, "relayOne")  # the application, on "AWS"
    ha.config("homeassistant/switch/pyiot_relayOne/relay1_relayState/config")
    ha.wait_for("pyiot/relayOne/relay1/relayState/state", "false")

    ha.publish("pyiot/relayOne/relay1/relayState/set", "true")
    run.wait_for(r"simulator: relay1\.relayState = true")
    app.wait_until(lambda d: reported(d).get("relayState") is True and not desired(d))
    ha.wait_latest("pyiot/relayOne/relay1/relayState/state", "true")
