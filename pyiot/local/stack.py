"""The local stack: a mosquitto broker pyiot owns plus pyiot's local Device Shadow service.

``pyiot run`` with no AWS settings starts this; things and apps then talk to
``mqtt://127.0.0.1:PORT`` exactly as they would to AWS IoT Core.

``listen`` beyond loopback requires users (a password file or user/password pairs) or a TLS
listener; without users the plain listener stays on loopback and only the TLS listener faces
the network. The shadow service always connects to the plain listener, logging in with an
account made for it on each start when that listener requires passwords.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import platformdirs

from pyiot.local.auth import (
    Credentials,
    InsecureListen,
    Listener,
    TlsFiles,
    is_loopback,
    is_wildcard,
    new_service_credentials,
    write_password_file,
)
from pyiot.local.mosquitto import Mosquitto, free_port
from pyiot.local.service import Service
from pyiot.local.shadow_service import ShadowService
from pyiot.local.store import ShadowStore

_LOGGER = logging.getLogger(__name__)

#: Environment variable that overrides where local shadows (and broker logs) are kept.
DATA_DIR_ENV = "PYIOT_DATA_DIR"
STORE_FILE = "shadows.sqlite3"
HOST = "127.0.0.1"
DEFAULT_TLS_PORT = 8883


def default_data_dir() -> Path:
    """``$PYIOT_DATA_DIR`` if set, else the platform's user data directory for pyiot."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("pyiot"))


class LocalStack(Service):
    """mosquitto + :class:`ShadowService` + :class:`ShadowStore`, started and stopped together.

    ``port`` is the preferred broker port (another free port is used if it is taken);
    ``None`` means any free port. ``listen`` is the address to listen on; ``users`` (name ->
    password) and ``password_file`` (made with mosquitto_passwd) require a login on the plain
    listener; ``tls`` adds a TLS listener on ``tls_port`` that requires client certificates.
    ``delta_first`` makes the shadow service publish ``update/delta`` before
    ``update/accepted`` (AWS IoT may do either).
    """

    def __init__(
        self,
        port: int | None = 1883,
        data_dir: Path | None = None,
        *,
        listen: str = HOST,
        users: dict[str, str] | None = None,
        password_file: Path | None = None,
        tls: TlsFiles | None = None,
        tls_port: int | None = DEFAULT_TLS_PORT,
        delta_first: bool = False,
    ) -> None:
        self.requested_port = port
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.listen = listen
        self.users = dict(users or {})
        self.password_file = Path(password_file) if password_file is not None else None
        self.tls = tls
        self.requested_tls_port = tls_port
        self.delta_first = delta_first
        needs_login = bool(self.users) or self.password_file is not None
        if not is_loopback(listen) and not needs_login and tls is None:
            raise InsecureListen(
                f"refusing to listen on {listen} without authentication: give a password file "
                "or a user and password, or TLS files (CA, certificate, key)"
            )
        # The plain listener faces the network only when it requires a login.
        self.host = listen if needs_login or is_loopback(listen) else HOST
        self.mosquitto: Mosquitto | None = None
        self.store: ShadowStore | None = None
        self.shadow_service: ShadowService | None = None
        self._service_credentials: Credentials | None = None

    @property
    def port(self) -> int:
        if self.mosquitto is None:
            raise RuntimeError("LocalStack is not started")
        return self.mosquitto.port

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def tls_port(self) -> int | None:
        """The TLS listener's port (None without TLS)."""
        if self.mosquitto is None:
            raise RuntimeError("LocalStack is not started")
        ports = [listener.port for listener in self.mosquitto.listeners if listener.tls]
        return ports[0] if ports else None

    @property
    def store_path(self) -> Path:
        return self.data_dir / STORE_FILE

    def start(self) -> None:
        """Start the broker, then the shadow service; on failure leave nothing running."""
        if self.mosquitto is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        workdir = self.data_dir / "mosquitto"
        port = free_port(self.requested_port)
        password_file = None
        if self.users or self.password_file is not None:
            if not is_loopback(self.host):
                _LOGGER.warning(
                    "plain MQTT on %s: passwords cross the network unencrypted; "
                    "prefer the TLS listener beyond a trusted network",
                    self.host,
                )
            self._service_credentials = new_service_credentials()
            password_file = workdir / "passwords"
            service = self._service_credentials
            write_password_file(
                password_file,
                {**self.users, service.username: service.password},
                include=self.password_file,
            )
        extra = []
        if self.tls is not None:
            tls_port = free_port(self.requested_tls_port)
            extra.append(Listener(tls_port, self.listen, tls=self.tls))
        mosquitto = Mosquitto(
            port,
            host=self.host,
            workdir=workdir,
            password_file=password_file,
            extra_listeners=extra,
        )
        mosquitto.start()
        self.mosquitto = mosquitto
        try:
            self.store = ShadowStore(self.store_path)
            # A wildcard address takes connections on loopback too.
            service_host = HOST if is_wildcard(self.host) else self.host
            self.shadow_service = ShadowService(
                service_host,
                port,
                self.store,
                credentials=self._service_credentials,
                delta_first=self.delta_first,
            )
            self.shadow_service.start()
        except BaseException:
            self.stop()
            raise
        _LOGGER.info("local stack on %s, shadows in %s", self.url, self.store_path)

    def restart_broker(self) -> None:
        """Stop mosquitto and start it again on the same ports (clients must reconnect)."""
        if self.mosquitto is None:
            raise RuntimeError("LocalStack is not started")
        self.mosquitto.stop()
        self.mosquitto.start()

    def stop(self) -> None:
        """Stop the shadow service, close the store, stop the broker."""
        service, self.shadow_service = self.shadow_service, None
        store, self.store = self.store, None
        mosquitto, self.mosquitto = self.mosquitto, None
        if service is not None:
            service.stop()
        if store is not None:
            store.close()
        if mosquitto is not None:
            mosquitto.stop()

    def __repr__(self) -> str:
        where = self.url if self.mosquitto is not None else "stopped"
        return f"<LocalStack {where} data_dir={self.data_dir}>"
