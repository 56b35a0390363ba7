"""A password handshake: the digest that opens a connection (PJLink class 1 with a password).

The projector greets `PJLINK 1 498e4a67`; the client's first command must start with
MD5("498e4a67" + password) in hex (`5d8409bc1c3fa39749434aa3a5c38682%1POWR ?`); a wrong one is
answered `PJLINK ERRA`. The file says how (`login md5 "{random}{password}" after /.../`); the
password comes from the environment, never from the file: `PYIOT_SECRET_PASSWORD`, or
`PYIOT_SECRET_<COMPONENT>_PASSWORD` for one component (that one wins), so a `.iot` file can be
shared, committed and printed without giving a password away.
"""

from __future__ import annotations

import hashlib
import os
import string
from collections.abc import Mapping

from pyiot.lang.model import Login

SECRET_PREFIX = "PYIOT_SECRET_"


def fields(login: Login) -> list[str]:
    """Every `{field}` of the login's format, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(login.format) if name]


def secret_names(login: Login) -> list[str]:
    """The format's fields that are not the greeting's groups: the secrets."""
    groups = set(login.greeting.compile_python().groupindex)
    return [name for name in fields(login) if name not in groups]


def variable(name: str, component: str | None = None) -> str:
    """The environment variable holding secret `name` (for one component when given)."""
    scope = f"{component}_" if component else ""
    return f"{SECRET_PREFIX}{scope}{name}".upper()


def secrets_for(
    login: Login, component: str, environ: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """The login's secrets for `component` from the environment; None when one is not set
    (the device then runs without a password: a PJLink projector greets `PJLINK 0`)."""
    environ = os.environ if environ is None else environ
    found = {}
    for name in secret_names(login):
        value = environ.get(variable(name, component), environ.get(variable(name)))
        if value is None:
            return None
        found[name] = value
    return found


def digest(login: Login, greeting: Mapping[str, str], secrets: Mapping[str, str]) -> str:
    """The hex digest of the format filled with the greeting's groups and the secrets."""
    text = login.format.format(**{**secrets, **greeting})
    return hashlib.new(login.digest, text.encode("utf-8")).hexdigest()


def greeting_groups(login: Login, line: str) -> dict[str, str] | None:
    """The named groups of a greeting that asks for the password (`PJLINK 1 <random>`);
    None when `line` is not that greeting."""
    found = login.greeting.compile().fullmatch(line)
    if found is None:
        return None
    return {k: v for k, v in found.groupdict().items() if v is not None}
