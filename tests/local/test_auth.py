"""Listening beyond loopback: passwords and TLS client certificates, with the real mosquitto."""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pyiot.local import InsecureListen, LocalStack, TlsFiles
from pyiot.local.auth import (
    SERVICE_USER,
    is_loopback,
    login_acl_text,
    open_acl_text,
    parse_grant,
    password_line,
    write_password_file,
)
from tests.shadow.certs import make_pki

pytestmark = pytest.mark.timeout(30)


def connect(
    port: int,
    user: str | None = None,
    password: str | None = None,
    tls: ssl.SSLContext | None = None,
    host: str = "127.0.0.1",
) -> str:
    """Log in with paho; return the broker's answer ("Success", "Not authorized", ...)."""
    outcome: list[str] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex)
    if user is not None:
        client.username_pw_set(user, password)
    if tls is not None:
        client.tls_set_context(tls)

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        outcome.append(str(reason_code))
        done.set()

    def on_disconnect(client, userdata, flags, reason_code, properties) -> None:
        outcome.append(f"disconnected: {reason_code}")
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(host, port)
    except (OSError, ssl.SSLError) as err:
        return f"refused: {err}"
    # Driven here, not by paho's thread: after a refusal that thread sleeps before retrying.
    deadline = time.monotonic() + 5
    while not done.is_set() and time.monotonic() < deadline:
        if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS and not done.is_set():
            outcome.append("connection lost")
            break
    client.disconnect()
    return outcome[0] if outcome else "no answer"


def test_password_line_is_what_mosquitto_accepts(mosquitto_path, tmp_path: Path) -> None:
    line = password_line("alice", "s3cret")
    user, _, hashed = line.partition(":")
    assert user == "alice" and hashed.startswith("$7$101$")
    with pytest.raises(ValueError, match="cannot be empty"):
        password_line("a:b", "x")
    with LocalStack(port=None, data_dir=tmp_path, users={"alice": "s3cret"}) as stack:
        assert connect(stack.port, "alice", "s3cret") == "Success"
        assert connect(stack.port, "alice", "wrong") != "Success"
        assert connect(stack.port) != "Success"  # anonymous
        # The shadow service logged in with its own account (it answered nothing otherwise).
        assert stack.shadow_service is not None
        passwords = (tmp_path / "mosquitto" / "passwords").read_text()
        assert passwords.count("\n") == 1 and passwords.startswith("alice:$7$")
        # Its account lives on a listener of its own, in a file of its own.
        service = (tmp_path / "mosquitto" / "service-passwords").read_text()
        assert service.startswith(f"{SERVICE_USER}:$7$")
        assert connect(stack.port, SERVICE_USER, "guess") != "Success"
        for name in ("passwords", "service-passwords"):
            assert (tmp_path / "mosquitto" / name).stat().st_mode & 0o077 == 0


def test_listening_beyond_loopback_needs_a_login_or_tls(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.7")
    with pytest.raises(InsecureListen, match="refusing to listen on 0.0.0.0"):
        LocalStack(listen="0.0.0.0", data_dir=tmp_path)


def test_wildcard_listener_with_a_password_file(mosquitto_path, make_probe, tmp_path) -> None:
    users = tmp_path / "users"
    write_password_file(users, {"bob": "pw-of-bob"})
    with LocalStack(
        port=None, data_dir=tmp_path / "data", listen="0.0.0.0", password_file=users
    ) as stack:
        assert stack.host == "0.0.0.0"
        assert connect(stack.port) != "Success"
        assert connect(stack.port, "bob", "pw-of-bob") == "Success"
        # The shadow service answers through the authenticated listener.
        probe = make_probe("127.0.0.1", stack.port, ("bob", "pw-of-bob"))
        thing = "bob"  # a login reaches the shadows of the thing named like it
        accepted = probe.request(
            f"$aws/things/{thing}/shadow/update", {"state": {"reported": {"a": 1}}}
        )
        probe.close()  # before the broker goes: a probe left behind would keep reconnecting
        assert accepted["version"] == 1


def test_a_password_file_may_not_claim_the_service_account(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"{SERVICE_USER}:$7$101$x$y\n")
    with pytest.raises(ValueError, match="is pyiot's"):
        write_password_file(tmp_path / "out", include=users)


def test_tls_listener_requires_a_client_certificate(mosquitto_path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    tls = TlsFiles(pki.ca, pki.server.cert, pki.server.key)
    with LocalStack(
        port=None, data_dir=tmp_path / "data", listen="0.0.0.0", tls=tls, tls_port=None
    ) as stack:
        # No password: the plain listener stays on loopback, only TLS faces the network.
        assert stack.host == "127.0.0.1" and stack.tls_port not in (None, stack.port)
        assert connect(stack.port) == "Success"
        with_cert = ssl.create_default_context(cafile=str(pki.ca))
        with_cert.load_cert_chain(str(pki.client.cert), str(pki.client.key))
        assert connect(stack.tls_port, tls=with_cert, host="localhost") == "Success"
        without_cert = ssl.create_default_context(cafile=str(pki.ca))
        assert connect(stack.tls_port, tls=without_cert, host="localhost") != "Success"


@pytest.mark.parametrize("delta_first", [False, True])
def test_reply_order_can_be_either(mosquitto_path, make_probe, tmp_path, delta_first) -> None:
    """AWS promises no order between accepted and delta; the service can produce both."""
    with LocalStack(port=None, data_dir=tmp_path, delta_first=delta_first) as stack:
        probe = make_probe(stack.host, stack.port)
        topic = "$aws/things/orderly/shadow/update"
        probe.subscribe(f"{topic}/delta")
        probe.request(topic, {"state": {"desired": {"on": True}}})
        probe.expect(f"{topic}/delta")
        probe.close()
        order = [t for t in probe.received if t.endswith(("/accepted", "/delta"))]
        expected = ["delta", "accepted"] if delta_first else ["accepted", "delta"]
        assert [t.rsplit("/", 1)[1] for t in order] == expected


def test_grants_name_a_user_and_things() -> None:
    assert parse_grant("app=lamp, door") == ("app", ["lamp", "door"])
    assert parse_grant("admin=*") == ("admin", ["*"])
    for wrong in ("app", "=lamp", "app=", "app=a/b", "app=#"):
        with pytest.raises(ValueError):
            parse_grant(wrong)
    # Anonymous loopback clients never get a reply topic; logins get their things only.
    assert "write $aws/things/+/shadow/update/" not in open_acl_text()
    text = login_acl_text(["lamp"], {"app": ["door"]})
    assert "user app\ntopic read $aws/things/door/shadow/#" in text
    assert "pattern write $aws/things/%u/shadow/+" in text
    assert "user lamp" not in text  # nothing beyond the thing named like it
