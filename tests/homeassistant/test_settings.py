"""`--homeassistant`, `--discovery-prefix`, `--homeassistant-broker` and their config-file keys."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import pytest

from pyiot.config import ConfigError, ConnectionSettings, homeassistant_settings
from pyiot.runtime.broker import BrokerAddress, TlsEndpoint

LOCAL = ConnectionSettings(None)


def args(config: Path | None = None, **given) -> Namespace:
    options = {"homeassistant": None, "discovery_prefix": None, "homeassistant_broker": None}
    return Namespace(config=config, **{**options, **given})


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nothing-here"))


def test_off_unless_asked() -> None:
    assert homeassistant_settings(args(), LOCAL).enabled is False


def test_command_line_then_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('homeassistant = true\ndiscovery_prefix = "ha"\n')
    from_file = homeassistant_settings(args(config), LOCAL)
    assert (from_file.enabled, from_file.prefix, from_file.broker) == (True, "ha", None)
    given = homeassistant_settings(args(config, discovery_prefix="hass"), LOCAL)
    assert given.prefix == "hass"


def test_a_broker_of_its_own_implies_home_assistant() -> None:
    settings = homeassistant_settings(args(homeassistant_broker="mqtt://ha.local:1884"), LOCAL)
    assert settings.enabled and settings.broker == BrokerAddress("ha.local", 1884)


def test_aws_alone_is_refused_and_aws_with_a_broker_is_fine(tmp_path: Path) -> None:
    aws = ConnectionSettings(TlsEndpoint("x-ats.iot.eu-west-1.amazonaws.com", Path("c"), Path("k")))
    with pytest.raises(ConfigError, match="--homeassistant-broker mqtt://HOST:PORT"):
        homeassistant_settings(args(homeassistant=True), aws)
    settings = homeassistant_settings(args(homeassistant_broker="mqtt://127.0.0.1:1883"), aws)
    assert settings.broker == BrokerAddress("127.0.0.1", 1883)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('homeassistant = "yes"\n', "homeassistant must be true or false"),
        ("discovery_prefix = 1\n", "discovery_prefix must be a string"),
        ('homeassistant = true\ndiscovery_prefix = "home/#"\n', "must be a plain topic"),
        ('homeassistant = true\nhomeassistant_broker = "http://x"\n', "mqtt://HOST:PORT"),
    ],
)
def test_bad_settings_are_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(ValueError, match=message.replace("/", ".")):
        homeassistant_settings(args(config), LOCAL)
