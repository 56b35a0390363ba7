"""Who may connect to the local broker: listeners, TLS files, password files.

By default pyiot's broker listens on loopback only and lets anyone on this host in, like any
local development broker. Listening anywhere else needs authentication: a mosquitto password
file (user names and PBKDF2 hashes) or TLS with client certificates.

The shadow service always logs in, with an account pyiot creates for it on every start (a
random password), on a loopback listener of its own that takes that login only. Only there may
a client publish the service's replies (``.../accepted``, ``rejected``, ``delta``,
``documents``), as AWS IoT lets no client do: a client that could would switch a device with
no trace in the shadow. On the other listeners (access control lists, :func:`open_acl_text`,
:func:`login_acl_text`) anonymous loopback clients may publish shadow requests and any topic
outside ``$`` and read all shadow topics; a login reaches the shadows of the thing named like
it and of the things granted to it (``grants``: user -> things, ``*`` for all).

mosquitto 2.0.11, checked by hand: a ``deny`` line wins over a broader grant whatever the
order, but it also stops delivery of that topic to the client, so "read all but publish none"
has to be written as grants of the request topics alone; ``#`` does not cover ``$``-topics;
``topic`` lines before any ``user`` apply only to clients that give no user name, so the open
listener's rules are ``pattern`` lines (awscrt puts its SDK name in the user name); and a
listener with a password file refuses a user name it does not know, which is why the
service's login lives on a listener of its own.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import os
import re
import secrets
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pyiot.errors import PyiotError
from pyiot.local.files import write_private

_LOGGER = logging.getLogger(__name__)

#: The account the shadow service logs in with when the broker requires passwords.
SERVICE_USER = "pyiot-shadow-service"
# mosquitto_passwd's own defaults for the "$7$" (PBKDF2-SHA512) format of mosquitto 2.
_PBKDF2_ITERATIONS = 101
_SALT_BYTES = 12


class InsecureListen(PyiotError, ValueError):
    """Listening beyond loopback without a password file or TLS was asked for."""

    what = "insecure listener"


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
    anonymous: bool = False  # clients without a user name may connect too (loopback)
    acl_file: Path | None = None  # what each client may publish and read

    @property
    def authenticated(self) -> bool:
        """Every client must log in (password or certificate)."""
        return not self.anonymous and (self.password_file is not None or self.tls is not None)

    def config_lines(self) -> list[str]:
        """This listener's block of a mosquitto.conf written with `per_listener_settings true`."""
        lines = [f"listener {self.port} {self.host}"]
        lines.append(f"allow_anonymous {'false' if self.authenticated else 'true'}")
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
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
    # A fresh 0600 file renamed into place: never readable by others, never through a link.
    write_private(path, "\n".join(lines) + "\n")
    _LOGGER.debug("wrote a password file with %d users", len(lines))


def password_file_users(path: Path) -> list[str]:
    """The user names of a mosquitto password file."""
    text = Path(path).read_text(encoding="utf-8")
    return [
        line.split(":", 1)[0].strip()
        for line in text.splitlines()
        if ":" in line and not line.lstrip().startswith("#")
    ]


#: A thing name as AWS IoT allows it; also what may appear in an ACL line.
_THING = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
ALL_THINGS = "*"

# Requests a client may publish: get/update/delete, of the classic and of named shadows.
# (`shadow/+` is one level: the replies, e.g. `update/accepted`, have one more.)
_REQUESTS = ("shadow/+", "shadow/name/+/+")


def parse_grant(text: str) -> tuple[str, list[str]]:
    """`USER=THING[,THING...]` (or `USER=*`) from the command line."""
    user, sep, things = text.partition("=")
    names = [name.strip() for name in things.split(",") if name.strip()]
    if not sep or not user or not names:
        raise ValueError(f"expected USER=THING[,THING...] or USER=*, got {text!r}")
    for name in names:
        if name != ALL_THINGS and not _THING.fullmatch(name):
            raise ValueError(f"{name!r} is not a thing name (letters, digits, : _ -)")
    return user, names


def _thing_lines(thing: str) -> list[str]:
    lines = [f"topic read $aws/things/{thing}/shadow/#"]
    lines += [f"topic write $aws/things/{thing}/{request}" for request in _REQUESTS]
    return lines


def open_acl_text() -> str:
    """The acl_file of the anonymous loopback listener.

    ``pattern`` lines apply to every client of the listener, whatever user name it gives
    (awscrt puts its SDK name there): every plain topic, every shadow topic to read, shadow
    requests to publish, and no reply topic. The shadow service has its own listener.
    """
    lines = [
        "# written by pyiot on every start: anyone on loopback, but no shadow replies",
        "pattern readwrite #",
        "pattern read $aws/things/+/shadow/#",
        *(f"pattern write $aws/things/+/{request}" for request in _REQUESTS),
    ]
    return "\n".join(lines) + "\n"


def login_acl_text(
    users: Iterable[str] = (), grants: Mapping[str, Iterable[str]] | None = None
) -> str:
    """The acl_file of listeners that require a login (password or client certificate).

    A login reaches the shadows of the thing named like it (a certificate's common name is
    its login) and of the things ``grants`` gives it (``*``: every thing and every plain
    topic); never a reply topic.
    """
    grants = {user: list(things) for user, things in (grants or {}).items()}
    lines = ["# written by pyiot on every start: each login reaches its own things"]
    for user in dict.fromkeys([*users, *grants]):
        if user == SERVICE_USER or not user or any(c.isspace() for c in user):
            continue
        things = grants.get(user, [])
        if not things:
            continue
        lines += ["", f"user {user}"]
        if ALL_THINGS in things:
            lines += ["topic readwrite #", *_thing_lines("+")]
            continue
        for thing in things:
            lines += _thing_lines(thing)
    lines += [
        "",
        "pattern read $aws/things/%u/shadow/#",
        *(f"pattern write $aws/things/%u/{request}" for request in _REQUESTS),
        # Every pyiot connection's last will (the shadow service marks its things offline).
        "pattern write pyiot/will/%c",
    ]
    return "\n".join(lines) + "\n"


def service_acl_text() -> str:
    """The acl_file of the shadow service's own listener: its account may do everything."""
    return "\n".join(
        [
            "# written by pyiot on every start: the shadow service alone publishes replies",
            f"user {SERVICE_USER}",
            "topic readwrite #",
            "topic readwrite $aws/things/+/shadow/#",
        ]
    ) + "\n"


