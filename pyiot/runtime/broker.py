"""Where the MQTT broker is, and how to open an awscrt MQTT5 client to it.

Two kinds of broker: a plain `mqtt://[user:password@]host:port` (pyiot's local stack, or any
broker on a trusted network) and a mutual-TLS endpoint (AWS IoT Core, or mosquitto with client
certificates) opened through awsiotsdk's `mtls_from_path` builder, as AWS documents it.

The connection carries an MQTT last will: if pyiot dies without disconnecting, the broker
publishes on `pyiot/will/CLIENT_ID` which things and components went offline with it. A will
may not be published on AWS IoT's reserved `$aws/...` topics, so it is no shadow update
itself: the local shadow service applies it, and on AWS IoT Core a rule republishes it to the
shadow's update topic (docs/aws.md). Its payload, one shadow update per thing:

    {"gateway": "CLIENT_ID",
     "things": {"THING": {"state": {"reported": {"pyiot": {"components":
                   {"COMPONENT": {"online": false, "error": "pyiot connection lost"}}}}}}}}
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from awscrt import mqtt5
from awsiot import mqtt5_client_builder

_LOGGER = logging.getLogger(__name__)

# A dead link must be noticed in seconds, not after the SDK builders' 20-minute default.
# 30 s is also the lowest keep-alive AWS IoT Core accepts.
KEEP_ALIVE_SECONDS = 30
MQTTS_PORT = 8883
# Reconnect soon after a broker restart, and never wait longer than this between tries.
# AWS IoT Core takes one CONNECT a second per client id (more are throttled): with its
# limits on, tries are at least a second apart, without jitter (awscrt's default "full"
# jitter may retry at once). Without them (`--no-aws-limits`), 0.2 s doubling.
MIN_RECONNECT_MS = 1000
FAST_RECONNECT_MS = 200
MAX_RECONNECT_MS = 5000
#: AWS IoT Core: a client id is at most 128 bytes (UTF-8).
MAX_CLIENT_ID_BYTES = 128
#: What awscrt's `AWS_IOT_CORE_DEFAULTS` throughput limiter charges for each outbound packet
#: (a PUBACK too) against its 512 KiB/s: one whole 4 KiB I/O message plus TLS framing for
#: each of its ethernet frames (aws-c-mqtt, mqtt5_client.c). Measured here on a plain broker:
#: a shadow round trip (the PUBLISH, and the PUBACKs of its replies) then takes ~40 ms instead
#: of ~3 ms once its bucket is drained, so it is used on the AWS (TLS) path only.
AWSCRT_PACKET_COST = 4096 + 4 * 64


@dataclass(frozen=True)
class BrokerAddress:
    """A plain MQTT broker: `mqtt://[user:password@]host:port` (no TLS)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parsed = urlparse(url if "://" in url else f"mqtt://{url}")
        if parsed.scheme != "mqtt" or not parsed.hostname:
            raise ValueError(f"a broker URL looks like mqtt://HOST:PORT, got {url!r}")
        username = unquote(parsed.username) if parsed.username else None
        password = unquote(parsed.password) if parsed.password else None
        return cls(parsed.hostname, parsed.port or 1883, username, password)

    def __str__(self) -> str:
        # The password never appears in logs or messages.
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"


@dataclass(frozen=True)
class TlsEndpoint:
    """A broker reached over mutual TLS: AWS IoT Core's `XXXX-ats.iot.REGION.amazonaws.com`.

    `cert` and `key` are the client's certificate and private key (PEM); `ca` is the CA that
    signs the broker's certificate (AWS: AmazonRootCA1.pem), or None for the system's.
    """

    host: str
    cert: Path
    key: Path
    ca: Path | None = None
    port: int = MQTTS_PORT

    @classmethod
    def parse(cls, endpoint: str, cert: Path, key: Path, ca: Path | None = None) -> TlsEndpoint:
        """`HOST` or `HOST:PORT` (port 8883 by default)."""
        text = endpoint.removeprefix("mqtts://").rstrip("/")
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = text, str(MQTTS_PORT)
        if not host or not port.isdigit() or "/" in host:
            raise ValueError(f"an endpoint looks like HOST or HOST:PORT, got {endpoint!r}")
        return cls(host, Path(cert), Path(key), Path(ca) if ca else None, int(port))

    def __str__(self) -> str:
        return f"mqtts://{self.host}:{self.port}"

    def check_files(self) -> None:
        """Raise a clear error for a missing file; warn when the private key is not private.

        The key's contents are never read here or logged anywhere; only its mode is looked at.
        """
        for what, path in (("certificate", self.cert), ("private key", self.key), ("CA", self.ca)):
            if path is not None and not path.is_file():
                raise FileNotFoundError(f"{what} file {path} not found")
            if path is not None and not os.access(path, os.R_OK):
                raise PermissionError(f"cannot read the {what} file {path}")
        mode = stat.S_IMODE(self.key.stat().st_mode)
        if mode & 0o077:
            _LOGGER.warning(
                "private key %s is readable by %s (mode %04o): run `chmod 600 %s`",
                self.key,
                "group and others" if mode & 0o044 == 0o044 else "others than its owner",
                mode,
                self.key,
            )


Broker = BrokerAddress | TlsEndpoint

#: The will's topic; `+` is the client id with anything a topic cannot hold replaced by `_`.
WILL_TOPIC = "pyiot/will/{client}"
#: What a component's `error` says once its gateway is gone without a word.
CONNECTION_LOST = "pyiot connection lost"


def will_topic(client_id: str) -> str:
    return WILL_TOPIC.format(client=re.sub(r"[^A-Za-z0-9_:.-]", "_", client_id) or "_")


def will_payload(client_id: str, things: dict[str, list[str]]) -> bytes:
    """The will's payload: for each thing, the shadow update that marks its components
    offline (so that an AWS IoT rule can republish one as it is)."""
    offline = {"online": False, "error": CONNECTION_LOST}
    body = {
        "gateway": client_id,
        "things": {
            thing: {"state": {"reported": {"pyiot": {"components": dict.fromkeys(names, offline)}}}}
            for thing, names in things.items()
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Lifecycle:
    """The awscrt lifecycle callbacks a client reports to (called on awscrt's threads)."""

    on_success: Callable[[Any], None]
    on_failure: Callable[[Any], None]
    on_disconnect: Callable[[Any], None]


def uses_awscrt_flow_control(broker: Broker) -> bool:
    """Whether a client for `broker` runs awscrt's `AWS_IOT_CORE_DEFAULTS` (the AWS path)."""
    return isinstance(broker, TlsEndpoint)


def build_client(
    broker: Broker,
    client_id: str,
    lifecycle: Lifecycle,
    things: dict[str, list[str]] | None = None,
    aws_limits: bool = True,
) -> mqtt5.Client:
    """An awscrt MQTT5 client for `broker` (not started); with `things` (name -> component
    names), a last will that reports them offline.

    With `aws_limits` (the default, on any broker, so that the local stack behaves as AWS
    IoT Core) the client reconnects no faster than once a second. On the AWS path (a
    `TlsEndpoint`) it also uses awscrt's `AWS_IOT_CORE_DEFAULTS`, as awsiotsdk's builders do:
    it refuses a topic over 256 bytes or 7 slashes, a SUBSCRIBE of more than 8 filters and a
    client id over 128 bytes before they are sent, and throttles its own output to 100
    publishes a second and 512 KB/s (see `AWSCRT_PACKET_COST` for why not on a plain broker).
    """
    min_reconnect = MIN_RECONNECT_MS if aws_limits else FAST_RECONNECT_MS
    if uses_awscrt_flow_control(broker):
        validation = mqtt5.ExtendedValidationAndFlowControlOptions.AWS_IOT_CORE_DEFAULTS
    else:
        validation = mqtt5.ExtendedValidationAndFlowControlOptions.NONE
    jitter = mqtt5.ExponentialBackoffJitterMode.NONE
    connect = mqtt5.ConnectPacket(client_id=client_id, keep_alive_interval_sec=KEEP_ALIVE_SECONDS)
    if things:
        connect.will = mqtt5.PublishPacket(
            topic=will_topic(client_id),
            payload=will_payload(client_id, things),
            qos=mqtt5.QoS.AT_LEAST_ONCE,
        )
    if isinstance(broker, TlsEndpoint):
        broker.check_files()
        return mqtt5_client_builder.mtls_from_path(
            endpoint=broker.host,
            port=broker.port,
            cert_filepath=str(broker.cert),
            pri_key_filepath=str(broker.key),
            ca_filepath=str(broker.ca) if broker.ca else None,
            client_id=client_id,
            connect_options=connect,
            extended_validation_and_flow_control_options=validation,
            retry_jitter_mode=jitter,
            min_reconnect_delay_ms=min_reconnect,
            max_reconnect_delay_ms=MAX_RECONNECT_MS,
            on_lifecycle_connection_success=lifecycle.on_success,
            on_lifecycle_connection_failure=lifecycle.on_failure,
            on_lifecycle_disconnection=lifecycle.on_disconnect,
        )
    # The awsiotsdk builders always create TLS: a plain broker gets a client built here.
    if broker.username is not None:
        connect.username = broker.username
        connect.password = broker.password or ""
    return mqtt5.Client(
        mqtt5.ClientOptions(
            host_name=broker.host,
            port=broker.port,
            connect_options=connect,
            extended_validation_and_flow_control_options=validation,
            retry_jitter_mode=jitter,
            min_reconnect_delay_ms=min_reconnect,
            max_reconnect_delay_ms=MAX_RECONNECT_MS,
            on_lifecycle_event_connection_success_fn=lifecycle.on_success,
            on_lifecycle_event_connection_failure_fn=lifecycle.on_failure,
            on_lifecycle_event_disconnection_fn=lifecycle.on_disconnect,
            # awscrt appends AWS's SDK metrics to the user name ("app?SDK=..."), which any
            # other broker then refuses as an unknown user.
            disable_metrics=True,
        )
    )


def disable_nagle_towards(host: str, port: int) -> int:
    """Set TCP_NODELAY on this process's TCP sockets connected to `host:port`; return how many.

    awscrt opens its own sockets and offers no TCP_NODELAY option, and with Nagle on every
    shadow round trip waits ~40 ms for a delayed ACK (measured here: 88 ms instead of a few ms
    desired -> reported). The socket is found among the process's file descriptors by its peer
    address; setting the option on a duplicate descriptor sets it on the shared socket.
    """
    try:
        peers = {info[4][:2] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
        fds = [
            int(name)
            for name in os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd")
        ]
    except OSError:
        return 0
    changed = 0
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with sock:
            try:
                if sock.type == socket.SOCK_STREAM and sock.getpeername()[:2] in peers:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    changed += 1
            except OSError:
                pass
    return changed
