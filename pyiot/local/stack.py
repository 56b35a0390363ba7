"""The local stack: a mosquitto broker pyiot owns plus pyiot's local Device Shadow service.

``pyiot run`` with no AWS settings starts this; things and apps then talk to
``mqtt://127.0.0.1:PORT`` exactly as they would to AWS IoT Core.

``listen`` beyond loopback requires users (a password file or user/password pairs) or a TLS
listener; without users the plain listener stays on loopback and only the TLS listener faces
the network. The shadow service always connects to the plain listener, logging in with an
account made for it on each start; the broker's ACL lets that account alone publish the
service's replies (see :mod:`pyiot.local.auth`).

One stack per data folder: a stack holds the folder's lock from the start and records its
address there once it is up (see :mod:`pyiot.local.discovery`); a second stack on the same
folder is refused. Everything it writes is private (folders 0700, files 0600).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypedDict

import platformdirs

from pyiot.local.auth import (
    Credentials,
    InsecureListen,
    Listener,
    TlsFiles,
    is_loopback,
    is_wildcard,
    login_acl_text,
    new_service_credentials,
    open_acl_text,
    password_file_users,
    service_acl_text,
    write_password_file,
)
from pyiot.local.discovery import FolderLock, StackRecord, remove_record, write_record
from pyiot.local.files import private_dir, write_private
from pyiot.local.front import QuotaFront
from pyiot.local.mosquitto import (
    MAX_QUEUED_BYTES,
    MAX_QUEUED_MESSAGES,
    PERSISTENT_CLIENT_EXPIRATION,
    Mosquitto,
    PortInUse,  # raised by start(); also imported from here
    exact_port,
    free_port,
    free_ports,
)
from pyiot.local.service import Service
from pyiot.local.shadow_service import ShadowService
from pyiot.local.store import ShadowStore

_LOGGER = logging.getLogger(__name__)

#: Environment variable that overrides where local shadows (and broker logs) are kept.
DATA_DIR_ENV = "PYIOT_DATA_DIR"
STORE_FILE = "shadows.sqlite3"
HOST = "127.0.0.1"
# How often a start picks its ports again when one was taken before mosquitto bound it.
_BIND_ATTEMPTS = 5
DEFAULT_TLS_PORT = 8883


def default_data_dir() -> Path:
    """``$PYIOT_DATA_DIR`` if set, else the platform's user data directory for pyiot."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("pyiot"))


class _BrokerLimits(TypedDict):
    """What bounds the broker's memory, handed to :class:`Mosquitto` as they are."""

    max_queued_messages: int
    max_queued_bytes: int
    persistent_client_expiration: str


class LocalStack(Service):
    """mosquitto + :class:`ShadowService` + :class:`ShadowStore`, started and stopped together.

    ``port`` is the broker port: that port or :class:`PortInUse`, never another one (0: any
    free port). With
    ``port=None`` the stack takes ``prefer_port`` if it is free, else any free port (then
    :attr:`port_note` says why). ``listen`` is the address to listen on; ``users`` (name ->
    password) and ``password_file`` (made with mosquitto_passwd) require a login on the plain
    listener; ``grants`` (user -> thing names, ``*`` for all) say which things' shadows each
    login reaches besides the thing named like it; ``tls`` adds a TLS listener on
    ``tls_port`` that requires client certificates. ``aws_limits`` (on by default) makes the
    stack refuse what AWS IoT Core refuses: a :class:`~pyiot.local.front.QuotaFront` takes the
    plain port and enforces the message broker's per-connection quotas before mosquitto
    (which then listens on an internal loopback port), and the shadow service answers 429
    above a thing's request rate or in-flight requests.
    ``delta_first`` makes the shadow service publish ``update/delta`` before
    ``update/accepted`` (AWS IoT may do either). The
    ``max_queued_*`` and ``persistent_client_expiration`` limits bound the broker's memory.
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        *,
        prefer_port: int | None = None,
        listen: str = HOST,
        users: dict[str, str] | None = None,
        password_file: Path | None = None,
        grants: Mapping[str, Iterable[str]] | None = None,
        tls: TlsFiles | None = None,
        tls_port: int | None = None,
        delta_first: bool = False,
        aws_limits: bool = True,
        max_queued_messages: int = MAX_QUEUED_MESSAGES,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        persistent_client_expiration: str = PERSISTENT_CLIENT_EXPIRATION,
    ) -> None:
        self.requested_port = port
        self.prefer_port = prefer_port
        self.grants = {user: list(things) for user, things in (grants or {}).items()}
        self.limits = _BrokerLimits(
            max_queued_messages=max_queued_messages,
            max_queued_bytes=max_queued_bytes,
            persistent_client_expiration=persistent_client_expiration,
        )
        self.port_note = ""  # why the port is not the preferred one, for messages
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.listen = listen
        self.users = dict(users or {})
        self.password_file = Path(password_file) if password_file is not None else None
        self.tls = tls
        self.requested_tls_port = tls_port
        self.delta_first = delta_first
        self.aws_limits = aws_limits
        needs_login = bool(self.users) or self.password_file is not None
        if not is_loopback(listen) and not needs_login and tls is None:
            raise InsecureListen(
                f"refusing to listen on {listen} without authentication: give a password file "
                "or a user and password, or TLS files (CA, certificate, key)"
            )
        # The plain listener faces the network only when it requires a login.
        self.host = listen if needs_login or is_loopback(listen) else HOST
        self.mosquitto: Mosquitto | None = None
        self.front: QuotaFront | None = None
        self.store: ShadowStore | None = None
        self.shadow_service: ShadowService | None = None
        self._service_credentials: Credentials | None = None
        self._lock = FolderLock(self.data_dir)

    @property
    def login_required(self) -> bool:
        """The plain listener takes logins only (no anonymous clients)."""
        return bool(self.users) or self.password_file is not None

    @property
    def port(self) -> int:
        """The plain listener's port clients use (the front's when AWS limits are on)."""
        if self.mosquitto is None:
            raise RuntimeError("LocalStack is not started")
        return self.front.port if self.front is not None else self.mosquitto.port

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
        """Claim the data folder, start the broker, then the shadow service, and record the
        stack in the folder; on failure leave nothing running."""
        if self.mosquitto is not None:
            return
        private_dir(self.data_dir)
        self._lock.acquire()  # StackError naming the running stack if there is one
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        _LOGGER.info("local stack on %s, shadows in %s", self.url, self.store_path)

    def _choose_port(self, probe_host: str) -> int:
        if self.requested_port == 0:  # as for bind(): any free port
            return free_port(None)
        if self.requested_port is not None:
            return exact_port(self.requested_port, probe_host)
        port = free_port(self.prefer_port)
        if self.prefer_port and port != self.prefer_port:
            self.port_note = f" (port {self.prefer_port} is in use by another program)"
        return port

    def _start(self) -> None:
        # Opened first: a store pyiot cannot use stops the start before anything is written.
        self.store = ShadowStore(self.store_path)
        workdir = private_dir(self.data_dir / "mosquitto")
        # The shadow service always logs in: the ACL gives its account alone the replies.
        self._service_credentials = service = new_service_credentials()
        if self.login_required and not is_loopback(self.host):
            _LOGGER.warning(
                "plain MQTT on %s: passwords cross the network unencrypted; "
                "prefer the TLS listener beyond a trusted network",
                self.host,
            )
        # A port picked here is free when picked, but another program (or an outgoing
        # connection's ephemeral port) can take it before mosquitto binds it: pick again.
        for attempt in range(_BIND_ATTEMPTS):
            mosquitto, port, service_listener = self._configure_broker(workdir, service)
            self.mosquitto = mosquitto
            try:
                mosquitto.start()
                if self.aws_limits:
                    self._start_front(port, mosquitto.port)
                break
            except RuntimeError as err:
                self.mosquitto = None
                mosquitto.stop()
                if not isinstance(err, PortInUse) or attempt == _BIND_ATTEMPTS - 1:
                    raise
                _LOGGER.info("a port was taken while mosquitto started; picking again")
        # A wildcard address takes connections on loopback too.
        url_host = HOST if is_wildcard(self.host) else self.host
        self.shadow_service = ShadowService(
            HOST,
            service_listener.port,
            self.store,
            credentials=service,
            delta_first=self.delta_first,
            aws_limits=self.aws_limits,
        )
        self.shadow_service.start()
        write_record(
            self.data_dir,
            StackRecord(
                url=f"mqtt://{url_host}:{port}",
                pid=os.getpid(),
                mosquitto_pid=mosquitto.pid,
                store=str(self.store_path),
                login=self.login_required,
                started=time.time(),
            ),
        )

    def _start_front(self, port: int, broker_port: int) -> None:
        """The quota front on the user-facing port, forwarding to mosquitto's."""
        front = QuotaFront(self.host, port, HOST, broker_port)
        try:
            front.start()
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise RuntimeError(f"cannot listen on {self.host}:{port}: {err.strerror}") from None
            if self.requested_port not in (None, 0):  # an explicit port: that one or nothing
                raise PortInUse(
                    f"port {port} on {self.host} is in use by another program: pick another "
                    "with --port, or leave --port out to use any free port"
                ) from None
            raise RuntimeError(f"cannot start the quota front: port {port} in use") from err
        self.front = front

    def _configure_broker(
        self, workdir: Path, service: Credentials
    ) -> tuple[Mosquitto, int, Listener]:
        """The broker to start, with its ports picked now: (mosquitto, main port, the shadow
        service's listener)."""
        port = self._choose_port(self.host)
        service_port, broker_port = free_ports(2, exclude={port})
        # The service's own loopback listener: its login only, and only there may a client
        # publish the service's replies.
        service_passwords = workdir / "service-passwords"
        write_password_file(service_passwords, {service.username: service.password})
        service_acl = workdir / "service.acl"
        write_private(service_acl, service_acl_text())
        service_listener = Listener(
            service_port,
            HOST,
            password_file=service_passwords,
            acl_file=service_acl,
        )
        password_file = None
        logins: list[str] = []
        if self.login_required:
            password_file = workdir / "passwords"
            write_password_file(password_file, self.users, include=self.password_file)
            logins = [*self.users]
            if self.password_file is not None:
                logins += password_file_users(self.password_file)
        acl_file = workdir / "acl"
        write_private(acl_file, login_acl_text(logins, self.grants))
        open_acl = workdir / "open.acl"
        write_private(open_acl, open_acl_text())
        extra = [service_listener]
        if self.tls is not None:
            tls_port = (
                exact_port(self.requested_tls_port, self.listen)
                if self.requested_tls_port is not None
                else free_port(DEFAULT_TLS_PORT)
            )
            extra.append(Listener(tls_port, self.listen, tls=self.tls, acl_file=acl_file))
        # With the quota front on the plain port, mosquitto's plain listener is internal.
        mosquitto = Mosquitto(
            broker_port if self.aws_limits else port,
            host=HOST if self.aws_limits else self.host,
            workdir=workdir,
            password_file=password_file,
            anonymous=not self.login_required,
            acl_file=acl_file if self.login_required else open_acl,
            extra_listeners=extra,
            file_tag=port,
            **self.limits,
        )
        return mosquitto, port, service_listener

    def lift_rate_limits(self) -> None:
        """Take any request and publish rate (AWS's 20 shadow requests a second per thing and
        100 publishes a second per connection), keeping every other quota: for benchmarks
        and tests that send hundreds a second on purpose."""
        if self.shadow_service is not None:
            self.shadow_service.aws_limits = False
        if self.front is not None:
            self.front.publish_rate = None

    def restart_broker(self) -> None:
        """Stop mosquitto and start it again on the same ports (clients must reconnect)."""
        if self.mosquitto is None:
            raise RuntimeError("LocalStack is not started")
        self.mosquitto.stop()
        self.mosquitto.start()

    def stop(self) -> None:
        """Stop the shadow service, close the store, stop the broker, release the folder."""
        service, self.shadow_service = self.shadow_service, None
        store, self.store = self.store, None
        mosquitto, self.mosquitto = self.mosquitto, None
        front, self.front = self.front, None
        if self._lock.held:  # first: nobody should find a stack that is going away
            remove_record(self.data_dir, os.getpid())
        try:
            if service is not None:
                service.stop()
            if store is not None:
                store.close()
            if front is not None:
                front.stop()
            if mosquitto is not None:
                mosquitto.stop()
        finally:
            self._lock.release()

    def __repr__(self) -> str:
        where = self.url if self.mosquitto is not None else "stopped"
        return f"<LocalStack {where} data_dir={self.data_dir}>"
