"""`pyiot run --endpoint/--cert/--key/--ca` (or a config file, or env vars): mutual TLS through
the awsiotsdk builder, against mosquitto with a TLS listener that requires client
certificates (made by the test). No AWS account needed: the same code path, another host."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyiot.local import LocalStack, TlsFiles
from tests.e2e.conftest import RELAY, ROOT, desired, pyiot_command, reported
from tests.shadow.certs import Pki, make_pki

pytestmark = pytest.mark.timeout(90)


def run_pyiot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a short pyiot command with these environment variables added."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYIOT_")}
    return subprocess.run(
        pyiot_command(*args),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**environment, **env},
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), client_name="relayOne")


@pytest.fixture(scope="module")
def tls_stack(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """mosquitto: loopback plain (the shadow service, the test's app) + TLS (the thing)."""
    tls = TlsFiles(pki.ca, pki.server.cert, pki.server.key)
    with LocalStack(
        port=None,
        data_dir=tmp_path_factory.mktemp("data"),
        tls=tls,
        tls_port=None,
        # The certificate's name reaches its own thing; envThing is granted explicitly.
        grants={"relayOne": ["envThing"]},
    ) as stack:
        yield stack


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No developer's ~/.config/pyiot or PYIOT_* settings leak into the command."""
    for key in [k for k in os.environ if k.startswith("PYIOT_")]:
        monkeypatch.delenv(key)
    return {"XDG_CONFIG_HOME": str(tmp_path / "config-home")}


def test_run_over_mutual_tls_from_the_command_line(cli, shadow_app, tls_stack, pki, clean_env):
    endpoint = f"localhost:{tls_stack.tls_port}"
    run = cli(
        "run", str(RELAY), "--simulate", "-vv",
        "--endpoint", endpoint,
        "--cert", str(pki.client.cert), "--key", str(pki.client.key), "--ca", str(pki.ca),
        env=clean_env,
    )  # fmt: skip
    run.wait_for(rf"connected to mqtts://{endpoint} as relayOne")
    run.wait_for(r"^ready")
    app = shadow_app(tls_stack.url, "relayOne")
    app.set_desired(relayState=True)
    app.wait_until(lambda d: reported(d).get("relayState") is True and not desired(d))
    run.wait_for(r"simulator: relay1\.relayState = true")
    # The broker saw the certificate's name and pyiot's low keep-alive (not the SDK's 1200 s).
    log = tls_stack.mosquitto.log_path.read_text()
    assert "as relayOne (p5, c1, k30, u'relayOne')" in log
    run.stop()
    key_body = pki.client.key.read_text().splitlines()[1]
    assert key_body not in "\n".join(run.lines)  # even at -vv the key never reaches a log


def test_run_from_a_config_file_warns_about_a_loose_key(
    cli, shadow_app, tls_stack, pki, clean_env, tmp_path
):
    loose_key = tmp_path / "device.key"
    loose_key.write_bytes(pki.client.key.read_bytes())
    os.chmod(loose_key, 0o644)
    config = tmp_path / "pyiot.toml"
    config.write_text(
        f'endpoint = "localhost:{tls_stack.tls_port}"\n'
        f'cert = "{pki.client.cert}"\n'
        'key = "device.key"\n'  # relative to the config file
        f'ca = "{pki.ca}"\n'
        'client_id = "gateway-7"\n'
    )
    run = cli("run", str(RELAY), "--simulate", "--config", str(config), env=clean_env)
    run.wait_for(rf"private key {loose_key} is readable by group and others .*chmod 600")
    run.wait_for(r"as gateway-7")
    run.wait_for(r"^ready")
    app = shadow_app(tls_stack.url, "relayOne")
    app.set_desired(relayState=False)
    app.wait_until(lambda d: reported(d).get("relayState") is False and not desired(d))


def test_shadow_command_over_tls_from_the_environment(tls_stack, pki, clean_env) -> None:
    env = {
        **clean_env,
        "PYIOT_ENDPOINT": f"localhost:{tls_stack.tls_port}",
        "PYIOT_CERT": str(pki.client.cert),
        "PYIOT_KEY": str(pki.client.key),
        "PYIOT_CA": str(pki.ca),
    }
    thing = "envThing"
    set_result = run_pyiot("shadow", "set", thing, "level=3", "mode=auto", env=env)
    assert set_result.returncode == 0, set_result.stderr
    got = run_pyiot("shadow", "get", thing, env=env)
    assert got.returncode == 0, got.stderr
    document = json.loads(got.stdout)
    assert document["desired"] == {"level": 3, "mode": "auto"}
    assert document["delta"] == {"level": 3, "mode": "auto"}


def test_a_client_certificate_from_another_ca_is_refused(tls_stack, pki, clean_env, tmp_path):
    stranger = make_pki(tmp_path / "stranger")
    result = run_pyiot(
        "shadow", "get", "relayOne",
        "--endpoint", f"localhost:{tls_stack.tls_port}",
        "--cert", str(stranger.client.cert), "--key", str(stranger.client.key),
        "--ca", str(pki.ca),
        env=clean_env,
    )  # fmt: skip
    assert result.returncode == 1
    # At once, with awscrt's reason, not after retrying until a timeout.
    assert result.stderr.startswith(
        f"pyiot: error: cannot connect to mqtts://localhost:{tls_stack.tls_port}: AWS_IO_TLS"
    ), result.stderr
    assert "Traceback" not in result.stderr
