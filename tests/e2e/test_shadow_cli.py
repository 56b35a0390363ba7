"""`pyiot shadow get|set|watch|delete [--shadow NAME]` and `pyiot broker --listen` as a user
runs them: real broker, real shadow service, the awsiotsdk client behind the command."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.e2e.conftest import ROOT, pyiot_command

pytestmark = pytest.mark.timeout(90)


def pyiot(*args: str, tmp_path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYIOT_")}
    environment["XDG_CONFIG_HOME"] = str(tmp_path / "config-home")
    return subprocess.run(
        pyiot_command(*args), capture_output=True, text=True, timeout=60, cwd=ROOT, env=environment
    )


def test_broker_refuses_to_face_the_network_without_a_login(tmp_path) -> None:
    result = pyiot("broker", "--listen", "0.0.0.0", "--port", "0", tmp_path=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("pyiot: error: refusing to listen on 0.0.0.0 without")
    half = pyiot("broker", "--listen", "0.0.0.0", "--username", "u", tmp_path=tmp_path)
    assert half.returncode == 1 and "--username and --password go together" in half.stderr


def test_shadow_commands_on_a_broker_that_requires_a_login(cli, tmp_path) -> None:
    broker = cli(
        "broker", "--listen", "0.0.0.0", "--port", "0", "--data", str(tmp_path / "data"),
        "--username", "app", "--password", "s3cret", "--grant", "app=lamp",
    )  # fmt: skip
    port = broker.wait_for(r"broker: mqtt://0\.0\.0\.0:(\d+) \(login required\)").group(1)
    url = f"mqtt://app:s3cret@127.0.0.1:{port}"

    def shadow(*args: str) -> subprocess.CompletedProcess[str]:
        return pyiot("shadow", *args, "--broker", url, tmp_path=tmp_path)

    watch = cli("shadow", "watch", "lamp", "--shadow", "settings", "--broker", url)
    watch.wait_for(r"watching lamp \(shadow settings\)")
    values = [
        "on=true",
        "level=12",
        'label="kitchen"',
        'curve={"points": [1, 2]}',
        "note=plain",
        "zone.a=1",
        "zone.b=x",
    ]
    result = shadow("set", "lamp", "--shadow", "settings", *values)
    assert result.returncode == 0, result.stderr
    got = shadow("get", "lamp", "--shadow", "settings")
    assert got.returncode == 0, got.stderr
    typed = {"on": True, "level": 12, "label": "kitchen", "curve": {"points": [1, 2]}}
    assert json.loads(got.stdout)["desired"] == {
        **typed,
        "note": "plain",
        "zone": {"a": 1, "b": "x"},
    }
    document = json.loads(watch.wait_for(r"^\{.*\}$").group(0))
    assert document["state"]["desired"]["level"] == 12
    # The named shadow is not the classic one.
    classic = shadow("get", "lamp")
    assert classic.returncode == 1 and "no shadow for thing lamp" in classic.stderr
    deleted = shadow("delete", "lamp", "--shadow", "settings")
    assert (
        deleted.returncode == 0 and "deleted the shadow of lamp (shadow settings)" in deleted.stdout
    )
    again = shadow("get", "lamp", "--shadow", "settings")
    assert again.returncode == 1 and "no shadow for thing lamp (shadow settings)" in again.stderr
    # Without the password the broker says no, and pyiot says so at once.
    anonymous = pyiot(
        "shadow", "get", "lamp", "--broker", f"mqtt://127.0.0.1:{port}", tmp_path=tmp_path
    )
    assert anonymous.returncode == 1
    assert "cannot connect to mqtt://127.0.0.1" in anonymous.stderr
    assert "NOT_AUTHORIZED" in anonymous.stderr or "BAD_USERNAME" in anonymous.stderr
    assert "s3cret" not in anonymous.stderr + got.stderr + result.stdout
