"""Which broker to use: the command line, then environment variables, then a config file.

    --broker mqtt://HOST:PORT                  PYIOT_BROKER      broker = "mqtt://..."
    --endpoint HOST[:PORT]                     PYIOT_ENDPOINT    endpoint = "xxxx-ats.iot..."
    --cert FILE  --key FILE  --ca FILE         PYIOT_CERT/KEY/CA cert = "...", key, ca
    --client-id ID                             PYIOT_CLIENT_ID   client_id = "..."
    --config FILE (else $XDG_CONFIG_HOME/pyiot/config.toml, ~/.config/pyiot/config.toml)

Home Assistant (`pyiot run`, command line then config file; see docs/homeassistant.md):

    --homeassistant                            homeassistant = true
    --discovery-prefix PREFIX                  discovery_prefix = "homeassistant"
    --homeassistant-broker mqtt://HOST:PORT    homeassistant_broker = "mqtt://..."

Each setting comes from the first place that gives it. `broker` and `endpoint` exclude each
other: the first place that names either decides, so `--broker` on the command line wins over an
endpoint in the config file. Paths in a config file are relative to the file. Nothing at all
means: start the local stack.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyiot.errors import PyiotError

if TYPE_CHECKING:  # awscrt loads slowly: only commands that connect import it
    from pyiot.runtime.broker import Broker


ENV = {
    "broker": "PYIOT_BROKER",
    "endpoint": "PYIOT_ENDPOINT",
    "cert": "PYIOT_CERT",
    "key": "PYIOT_KEY",
    "ca": "PYIOT_CA",
    "client_id": "PYIOT_CLIENT_ID",
}
KEYS = tuple(ENV)
_PATH_KEYS = ("cert", "key", "ca")
# Config-file keys of the Home Assistant bridge (with their type); not connection settings.
HA_KEYS: dict[str, type] = {
    "homeassistant": bool,
    "discovery_prefix": str,
    "homeassistant_broker": str,
}


class ConfigError(PyiotError, ValueError):
    """Settings that contradict each other, or a config file pyiot cannot use."""

    what = "unusable settings"


@dataclass(frozen=True)
class ConnectionSettings:
    """Where to connect. `broker` None means: start pyiot's local stack."""

    broker: Broker | None
    client_id: str | None = None
    origin: str = "defaults"  # where the broker choice came from, for messages

    @property
    def is_tls(self) -> bool:
        from pyiot.runtime.broker import TlsEndpoint

        return isinstance(self.broker, TlsEndpoint)


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "pyiot" / "config.toml"


def load_config(path: Path) -> dict[str, Any]:
    """The settings of a TOML config file, paths made absolute; unknown keys are an error."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError(f"reading {path} needs Python 3.11 or `pip install tomli`") from None
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from None
    unknown = sorted(set(data) - {*KEYS, *HA_KEYS})
    if unknown:
        known = ", ".join([*KEYS, *HA_KEYS])
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r} (known: {known})")
    settings: dict[str, Any] = {}
    for key, value in data.items():
        if key in HA_KEYS:
            if not isinstance(value, HA_KEYS[key]):
                kind = "true or false" if HA_KEYS[key] is bool else "a string"
                raise ConfigError(f"{path}: {key} must be {kind}, got {value!r}")
            settings[key] = value
            continue
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {key} must be a string, got {value!r}")
        if key in _PATH_KEYS:
            # Relative to the file, so a config next to its certificates works from anywhere.
            value = str((path.parent / Path(value).expanduser()).resolve())
        settings[key] = value
    return settings


def resolve(
    options: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config: Path | None = None,
) -> ConnectionSettings:
    """Combine command-line `options` (keys of KEYS; None when not given), the environment
    and the config file (`config`, else the default path when it exists)."""
    from pyiot.runtime.broker import BrokerAddress, TlsEndpoint

    environ = os.environ if environ is None else environ
    layers: list[tuple[str, dict[str, Any]]] = [
        ("the command line", {k: options.get(k) for k in KEYS if options.get(k)}),
        ("the environment", {k: environ[v] for k, v in ENV.items() if environ.get(v)}),
    ]
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"config file {config} not found")
        layers.append((f"config file {config}", load_config(config)))
    else:
        default = default_config_path(environ)
        if default.is_file():
            layers.append((f"config file {default}", load_config(default)))

    def first(key: str) -> Any:
        return next((values[key] for _, values in layers if values.get(key)), None)

    command_line = layers[0][1]
    for origin, values in layers:
        if "broker" in values and "endpoint" in values:
            raise ConfigError(f"{origin} gives both a broker and an endpoint: keep one")
        if "broker" in values:
            if origin == layers[0][0] and any(k in command_line for k in _PATH_KEYS):
                raise ConfigError("--cert/--key/--ca go with --endpoint, not --broker")
            broker = BrokerAddress.parse(values["broker"])
            return ConnectionSettings(broker, first("client_id"), origin)
        if "endpoint" in values:
            cert, key, ca = first("cert"), first("key"), first("ca")
            if not cert or not key:
                raise ConfigError(
                    f"the endpoint from {origin} needs a client certificate and its key: "
                    "--cert FILE --key FILE (or PYIOT_CERT/PYIOT_KEY, or cert/key in the "
                    "config file)"
                )
            endpoint = TlsEndpoint.parse(
                values["endpoint"],
                Path(cert).expanduser(),
                Path(key).expanduser(),
                Path(ca).expanduser() if ca else None,
            )
            return ConnectionSettings(endpoint, first("client_id"), origin)
    if any(k in command_line for k in _PATH_KEYS):
        raise ConfigError("--cert/--key/--ca need --endpoint HOST (or PYIOT_ENDPOINT)")
    return ConnectionSettings(None, first("client_id"))


def add_connection_arguments(parser: Any, local_default: str) -> None:
    """The broker options `pyiot run` and `pyiot shadow` share (an argparse parser)."""
    group = parser.add_argument_group(
        "connection", f"default: {local_default}; the environment and a config file also work"
    )
    group.add_argument(
        "--broker", metavar="URL", help="mqtt://[USER:PASSWORD@]HOST:PORT (env PYIOT_BROKER)"
    )
    group.add_argument(
        "--endpoint",
        metavar="HOST",
        help="AWS IoT endpoint XXXX-ats.iot.REGION.amazonaws.com[:PORT] (env PYIOT_ENDPOINT)",
    )
    group.add_argument("--cert", metavar="FILE", help="client certificate, PEM (env PYIOT_CERT)")
    group.add_argument(
        "--key", metavar="FILE", help="the certificate's private key, PEM (env PYIOT_KEY)"
    )
    group.add_argument(
        "--ca", metavar="FILE", help="CA of the endpoint, e.g. AmazonRootCA1.pem (env PYIOT_CA)"
    )
    group.add_argument("--client-id", metavar="ID", help="MQTT client id (env PYIOT_CLIENT_ID)")
    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file with these settings (default: ~/.config/pyiot/config.toml if present)",
    )


def settings_from_args(args: Any) -> ConnectionSettings:
    """ConnectionSettings from parsed `add_connection_arguments` options."""
    options = {key: getattr(args, key, None) for key in KEYS}
    return resolve(options, config=getattr(args, "config", None))


@dataclass(frozen=True)
class HomeAssistantSettings:
    """`pyiot run --homeassistant`: the discovery prefix, and the broker Home Assistant uses
    when it is not the shadows' (None: the same)."""

    enabled: bool
    prefix: str = "homeassistant"
    broker: Broker | None = None


def add_homeassistant_arguments(parser: Any) -> None:
    """`pyiot run`'s Home Assistant options (an argparse parser)."""
    group = parser.add_argument_group(
        "Home Assistant", "MQTT discovery of every component (docs/homeassistant.md)"
    )
    group.add_argument(
        "--homeassistant",
        action="store_true",
        default=None,
        help="publish every component to Home Assistant by MQTT discovery",
    )
    group.add_argument(
        "--discovery-prefix", metavar="PREFIX", help="Home Assistant's discovery prefix"
    )
    group.add_argument(
        "--homeassistant-broker",
        metavar="URL",
        help="mqtt://[USER:PASSWORD@]HOST:PORT of Home Assistant's broker, when the shadows "
        "are elsewhere (AWS IoT Core); implies --homeassistant",
    )


def homeassistant_settings(args: Any, connection: ConnectionSettings) -> HomeAssistantSettings:
    """The Home Assistant settings from the command line, then the config file.

    Refuses Home Assistant on AWS IoT Core with no broker of its own: Home Assistant does not
    connect to AWS IoT's mutual-TLS endpoint.
    """
    from pyiot.runtime.broker import BrokerAddress, TlsEndpoint

    config = getattr(args, "config", None)
    if config is None:
        default = default_config_path()
        config = default if default.is_file() else None
    file = load_config(config) if config is not None and config.is_file() else {}

    def first(option: str) -> Any:
        given = getattr(args, option, None)
        return given if given is not None else file.get(option)

    url = first("homeassistant_broker")
    enabled = bool(first("homeassistant")) or url is not None
    prefix = first("discovery_prefix") or "homeassistant"
    if not enabled:
        return HomeAssistantSettings(False, prefix)
    if not prefix or any(c in prefix for c in "+#") or prefix.startswith("/"):
        raise ConfigError(f"--discovery-prefix must be a plain topic, got {prefix!r}")
    broker = BrokerAddress.parse(url) if url else None
    if broker is None and isinstance(connection.broker, TlsEndpoint):
        raise ConfigError(
            "--homeassistant on AWS IoT Core needs a broker Home Assistant can reach "
            "(it does not connect to AWS IoT's mutual-TLS endpoint): add "
            "--homeassistant-broker mqtt://HOST:PORT (see docs/homeassistant.md)"
        )
    return HomeAssistantSettings(True, prefix.rstrip("/"), broker)
