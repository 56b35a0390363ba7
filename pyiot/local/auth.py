"""Who may connect to the local broker: listeners, TLS files, password files.

By default pyiot's broker listens on loopback only and lets anyone on this host in, like any
local development broker. Listening anywhere else needs authentication: a mosquitto password
file (user names and PBKDF2 hashes) or TLS with client certificates. The shadow service then
logs in with an account pyiot creates for it on every start.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

#: The account the shadow service logs in with when the broker requires passwords.
SERVICE_USER = "pyiot-shadow-service"
# mosquitto_passwd's own defaults for the "$7$" (PBKDF2-SHA512) format of mosquitto 2.
_PBKDF2_ITERATIONS = 101
_SALT_BYTES = 12


class InsecureListen(ValueError):
    """Listening beyond loopback without a password file or TLS was asked for."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS listener: the CA that signs client certificates, and the server's
    certificate and key. Clients must present a certificate signed by `ca`."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class Listener:
    """One mosquitto listener: where, and who may connect."""

    port: int
    host: str = "127.0.0.1"
    password_file: Path | None = None  # clients log in with a user of this file
    tls: TlsFiles | None = None  # clients present a certificate signed by tls.ca

    @property
    def authenticated(self) -> bool:
        return self.password_file is not None or self.tls is not None

    def config_lines(self) -> list[str]:
        """This listener's block of a mosquitto.conf written with `per_listener_settings true`."""
        lines = [f"listener {self.port} {self.host}"]
        if not self.authenticated:
            lines.append("allow_anonymous true")
            return lines
        lines.append("allow_anonymous false")
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.cert}",
                f"keyfile {self.tls.key}",
                "require_certificate true",
                # The certificate is the login: its common name becomes the user name, so a
                # client needs no password on this listener.
                "use_identity_as_username true",
            ]
        return lines


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def is_wildcard(host: str) -> bool:
    """`0.0.0.0` or `::`: every interface of this host, loopback included."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def password_line(user: str, password: str) -> str:
    """One line of a mosquitto 2 password file: `user:$7$iterations$salt$hash`."""
    if not user or ":" in user or "\n" in user:
        raise ValueError(f"a broker user name cannot be empty or hold ':' ({user!r})")
    salt = os.urandom(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, _PBKDF2_ITERATIONS)
    encode = base64.b64encode
    return f"{user}:$7${_PBKDF2_ITERATIONS}${encode(salt).decode()}${encode(digest).decode()}"


@dataclass(frozen=True)
class Credentials:
    """A user name and password an MQTT client logs in with."""

    username: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"Credentials({self.username!r}, ***)"


def new_service_credentials() -> Credentials:
    """A fresh random password for the shadow service's account (lives as long as the broker)."""
    return Credentials(SERVICE_USER, secrets.token_urlsafe(24))


def write_password_file(
    path: Path,
    users: dict[str, str] | None = None,
    include: Path | None = None,
) -> None:
    """Write a mosquitto password file readable by its owner only.

    `users` maps names to clear-text passwords (hashed here); `include` is a password file the
    user made with mosquitto_passwd, copied as it is (its lines are already hashed).
    """
    lines: list[str] = []
    if include is not None:
        text = Path(include).read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                if ":" not in line:
                    raise ValueError(f"{include}:{number}: not a mosquitto password line")
                if line.split(":", 1)[0] == SERVICE_USER:
                    raise ValueError(f"{include}:{number}: the user {SERVICE_USER} is pyiot's")
                lines.append(line.strip())
    for user, password in (users or {}).items():
        lines.append(password_line(user, password))
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start: the hashes are never readable by others, even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    _LOGGER.debug("wrote a password file with %d users", len(lines))
