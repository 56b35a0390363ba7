"""Where the broker settings come from: command line, then environment, then a TOML file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pyiot.config import ConfigError, default_config_path, resolve
from pyiot.runtime.broker import BrokerAddress, TlsEndpoint


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("not read by these tests\n")
    os.chmod(tmp_path / "key.pem", 0o600)
    return tmp_path


def write_config(directory: Path, text: str) -> Path:
    path = directory / "pyiot.toml"
    path.write_text(text)
    return path


def test_nothing_given_means_the_local_stack(tmp_path: Path) -> None:
    settings = resolve({}, environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert settings.broker is None and not settings.is_tls


def test_command_line_endpoint(files: Path) -> None:
    options = {
        "endpoint": "abc-ats.iot.eu-west-1.amazonaws.com",
        "cert": str(files / "cert.pem"),
        "key": str(files / "key.pem"),
        "ca": str(files / "ca.pem"),
    }
    settings = resolve(options, environ={"XDG_CONFIG_HOME": str(files)})
    assert settings.broker == TlsEndpoint(
        "abc-ats.iot.eu-west-1.amazonaws.com",
        files / "cert.pem",
        files / "key.pem",
        files / "ca.pem",
        8883,
    )
    assert settings.is_tls and settings.origin == "the command line"


def test_environment_and_its_port(files: Path) -> None:
    environ = {
        "PYIOT_ENDPOINT": "localhost:18883",
        "PYIOT_CERT": str(files / "cert.pem"),
        "PYIOT_KEY": str(files / "key.pem"),
        "PYIOT_CLIENT_ID": "gw1",
        "XDG_CONFIG_HOME": str(files),
    }
    settings = resolve({}, environ=environ)
    assert isinstance(settings.broker, TlsEndpoint)
    assert (settings.broker.host, settings.broker.port, settings.broker.ca) == (
        "localhost",
        18883,
        None,
    )
    assert settings.client_id == "gw1" and settings.origin == "the environment"


def test_config_file_paths_are_relative_to_the_file(files: Path) -> None:
    config = write_config(
        files,
        'endpoint = "abc-ats.iot.us-east-1.amazonaws.com"\n'
        'cert = "cert.pem"\nkey = "key.pem"\nca = "ca.pem"\nclient_id = "relayOne"\n',
    )
    settings = resolve({}, environ={}, config=config)
    assert isinstance(settings.broker, TlsEndpoint)
    assert settings.broker.cert == files / "cert.pem"
    assert settings.broker.key == files / "key.pem"
    assert settings.client_id == "relayOne"


def test_default_config_file_is_read(files: Path) -> None:
    (files / "pyiot").mkdir()
    write_config(files / "pyiot", 'broker = "mqtt://10.0.0.5:1884"\n').rename(
        files / "pyiot" / "config.toml"
    )
    environ = {"XDG_CONFIG_HOME": str(files)}
    assert default_config_path(environ) == files / "pyiot" / "config.toml"
    assert resolve({}, environ=environ).broker == BrokerAddress("10.0.0.5", 1884)


def test_command_line_broker_beats_a_configured_endpoint(files: Path) -> None:
    config = write_config(
        files, 'endpoint = "abc-ats.iot.us-east-1.amazonaws.com"\ncert = "c"\nkey = "k"\n'
    )
    settings = resolve({"broker": "mqtt://u:p%40ss@127.0.0.1:1999"}, environ={}, config=config)
    assert settings.broker == BrokerAddress("127.0.0.1", 1999, "u", "p@ss")
    assert str(settings.broker) == "mqtt://u@127.0.0.1:1999"  # no password in messages


@pytest.mark.parametrize(
    ("options", "text", "message"),
    [
        ({"endpoint": "h", "cert": "c"}, "", "needs a client certificate and its key"),
        ({"cert": "c", "key": "k"}, "", "--cert/--key/--ca need --endpoint"),
        ({"broker": "mqtt://h:1", "key": "k"}, "", "go with --endpoint, not --broker"),
        ({}, 'broker = "mqtt://a:1"\nendpoint = "b"\n', "gives both a broker and an endpoint"),
        ({}, 'endpont = "typo"\n', "unknown setting 'endpont'"),
        ({}, "client_id = 12\n", "must be a string"),
        ({}, "endpoint = \n", "pyiot.toml"),
        ({"endpoint": "https://h/x", "cert": "c", "key": "k"}, "", "HOST or HOST:PORT"),
    ],
)
def test_contradictions_are_clear_errors(files: Path, options, text, message) -> None:
    config = write_config(files, text) if text else None
    with pytest.raises((ConfigError, ValueError), match=message):
        resolve(options, environ={"XDG_CONFIG_HOME": str(files / "none")}, config=config)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        resolve({}, environ={}, config=tmp_path / "nope.toml")


def test_key_checks(files: Path, caplog: pytest.LogCaptureFixture) -> None:
    endpoint = TlsEndpoint("h", files / "cert.pem", files / "key.pem", files / "ca.pem")
    with caplog.at_level(logging.WARNING):
        endpoint.check_files()
    assert not caplog.records  # 0600: nothing to say
    os.chmod(files / "key.pem", 0o644)
    with caplog.at_level(logging.WARNING):
        endpoint.check_files()
    assert f"chmod 600 {files / 'key.pem'}" in caplog.text
    assert "group and others" in caplog.text and "0644" in caplog.text
    with pytest.raises(FileNotFoundError, match="certificate file .* not found"):
        TlsEndpoint("h", files / "missing.pem", files / "key.pem").check_files()
