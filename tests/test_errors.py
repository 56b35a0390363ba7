"""One error root: every exception class pyiot defines derives from PyiotError, keeps the
builtin base callers already catch, and says what it is in `what`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pyiot
from pyiot.errors import PyiotError


def _pyiot_exceptions() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(pyiot.__path__, "pyiot."):
        if info.name == "pyiot.__main__":
            continue  # runs the CLI when imported
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == info.name:
                found.append(obj)
    return found


def test_every_pyiot_exception_derives_from_the_root():
    classes = _pyiot_exceptions()
    assert len(classes) >= 25
    strays = [f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, PyiotError)]
    assert strays == []
    # Each says what it is, in a few words of its own.
    vague = [
        c.__qualname__
        for c in classes
        if c is not PyiotError and (c.what == PyiotError.what or len(c.what) > 40)
    ]
    assert vague == []


def test_builtin_bases_stay_for_callers_that_catch_them():
    from pyiot.config import ConfigError
    from pyiot.lang.source import SourceError
    from pyiot.lang.values import BadValue
    from pyiot.local.mosquitto import PortInUse
    from pyiot.runtime.transport import LinkClosed

    assert issubclass(BadValue, ValueError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(SourceError, OSError)
    assert issubclass(LinkClosed, ConnectionError)
    assert issubclass(PortInUse, RuntimeError)
    err = SourceError("x.iot", "a fifo")
    assert (err.path, err.reason, err.code) == ("x.iot", "a fifo", None)


def test_local_service_refusals_carry_their_code():
    from pyiot.local.shadow_doc import ShadowError as ServiceRefusal

    err = ServiceRefusal(409, "Version conflict")
    assert isinstance(err, PyiotError) and err.code == 409
