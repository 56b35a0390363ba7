"""`Component`: the original pyIOT's device class, as its users wrote them.

A subclass says how device messages become property values (`componentToProperty`), how
property values become device commands (`propertyToComponent`), what to poll (`queryStatus`)
and when the device is busy (`ready`). Nothing here runs the device: a `Thing` turns each
component into a device model (`pyiot.legacy.model`) and runs it on pyiot's `ComponentEngine`
(`pyiot.legacy.engine`), the engine `.iot` files run on.

Every method of a component runs in the thing's event loop. `updateComponent`,
`requestStatus` and `exit` may also be called from other threads.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pyiot.legacy.engine import LegacyEngine
    from pyiot.legacy.thing import Thing

_LOGGER = logging.getLogger("pyiot.legacy")

F = TypeVar("F", bound=Callable[..., Any])

# Where the decorators leave their registrations on the decorated function.
READS_ATTR = "_pyiot_component_to_property"
WRITES_ATTR = "_pyiot_property_to_component"


class Component:
    """One device of a thing, described by decorated conversion methods.

    Args:
        name: the component's name (default: the class name); unique within its thing.
        stream: how to reach the device: an object with `read()` (bytes, `b''` when nothing
            came), `write(bytes)` and `close()` such as a `serial.Serial`, or a pyserial URL
            / device path (`"/dev/ttyUSB0"`, `"socket://host:port"`) that pyiot opens itself.
        eol: what ends each message from the device (str or bytes, default `"\\n"`). A
            command that does not end in `"\\r"` or `"\\n"` gets it appended when `eol` is a
            line ending.
        timeout: seconds a synchronous component waits for the device's answer.
        queryTiming: seconds between two `queryStatus()` polls.
        synchronous: True for a device that only speaks when spoken to: each command or query
            waits for one answer before the next goes out. False (the default): commands
            are written without waiting and every message is routed when it comes.
        properties: initial values of `self.properties` (the first pyIOT versions took these).
    """

    _logger = _LOGGER

    def __init__(
        self,
        name: str | None = None,
        stream: Any = None,
        eol: str | bytes = b"\n",
        timeout: float = 2.0,
        queryTiming: float = 5.0,  # noqa: N803 (the original API's spelling)
        synchronous: bool = False,
        *,
        properties: dict[str, Any] | None = None,
    ):
        self.__name__ = name if name is not None else type(self).__name__
        self._stream = stream
        self._eol = eol.decode("utf-8") if isinstance(eol, bytes) else str(eol)
        if not self._eol:
            raise ValueError(f"component {self.__name__}: eol must not be empty")
        self._timeout = float(timeout)
        self._queryTiming = queryTiming
        self._synchronous = bool(synchronous)
        # Every property the decorators name, None until the device tells its value.
        self.properties: dict[str, Any] = dict.fromkeys(property_names(type(self)))
        self.properties.update(properties or {})
        self._engine: LegacyEngine | None = None
        self._thing: Thing | None = None
        self._early: list[tuple[str, tuple]] = []  # calls made before the thing runs

    # ----------------------------------------------------------------------- decorators
    @classmethod
    def componentToProperty(cls, property: str | list[str], regex: str | re.Pattern) -> Callable:  # noqa: N802
        """Decorate `method(self, property, value)` that turns a device message into a value.

        `regex` must match the message from its start (as `re.match`); its first group
        carries the value of `property`. With a list of properties, group N carries the
        N-th property's value and the method is called once per property. The method
        returns the property's value, or raises ValueError/TypeError when it cannot.
        """
        names = [property] if isinstance(property, str) else list(property)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise TypeError("componentToProperty takes a property name or a list of names")
        compiled = re.compile(regex)

        def decorate(func: F) -> F:
            found = getattr(func, READS_ATTR, None)
            if found is None:
                found = []
                setattr(func, READS_ATTR, found)
            found.append((tuple(names), compiled))
            return func

        return decorate

    @classmethod
    def propertyToComponent(cls, property: str, cmd: str) -> Callable:  # noqa: N802
        """Decorate `method(self, value)` that turns a wanted value into command text.

        What the method returns fills `{0}` of `cmd` (`'P1P{0}'`); it raises ValueError or
        TypeError for a value the device cannot take (the shadow shows the rejection).
        """
        if not isinstance(property, str) or not isinstance(cmd, str):
            raise TypeError("propertyToComponent takes a property name and a command format")

        def decorate(func: F) -> F:
            found = getattr(func, WRITES_ATTR, None)
            if found is None:
                found = {}
                setattr(func, WRITES_ATTR, found)
            found[property] = cmd
            return func

        return decorate

    # ----------------------------------------------------------------- override points
    def queryStatus(self) -> str | list[str] | None:  # noqa: N802
        """The query (or list of queries) to send every `queryTiming` seconds; None: none."""
        return None

    def ready(self) -> bool | float:
        """False when the device takes commands; when busy, the seconds to wait before
        asking again (commands wait meanwhile; `queryStatus` polls go on)."""
        return False

    # ------------------------------------------------------------------------ controls
    def updateComponent(self, property: str, value: Any) -> None:  # noqa: N802
        """Ask the device to take `value` for `property` (skipped if it has it already)."""
        self._call("update", property, value)

    def requestStatus(self) -> None:  # noqa: N802
        """Poll the device (`queryStatus`) now rather than at the next period."""
        self._call("request_status")

    def exit(self) -> None:
        """Stop the thing this component belongs to (its `start()` returns)."""
        if self._thing is not None:
            self._thing.stop()

    def close(self) -> None:
        """Close the stream (called when the thing stops); override for custom transports."""
        close = getattr(self._stream, "close", None)
        if callable(close):
            close()

    # -------------------------------------------------------------------------- plumbing
    def _attach(self, engine: LegacyEngine | None) -> None:
        """Bind to the engine that runs this component (None when it stops)."""
        self._engine = engine
        if engine is not None:
            early, self._early = self._early, []
            for action, args in early:
                getattr(engine, action)(*args)

    def _call(self, action: str, *args: Any) -> None:
        engine = self._engine
        if engine is None:
            self._early.append((action, args))
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = engine.loop
        if loop is None or running is loop:
            # In its loop, or not started yet (nothing runs beside us): call it now.
            getattr(engine, action)(*args)
        else:
            loop.call_soon_threadsafe(getattr(engine, action), *args)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.__name__}>"


def registrations(cls: type) -> tuple[list[tuple[Callable, tuple[str, ...], re.Pattern]], dict]:
    """The decorated methods of a component class, subclasses first, in definition order.

    Returns (readers, writers): readers as (function, property names, regex), writers as
    property -> (function, command format); for a property written by several classes, the
    most derived one wins.
    """
    readers: list[tuple[Callable, tuple[str, ...], re.Pattern]] = []
    writers: dict[str, tuple[Callable, str]] = {}
    for klass in cls.__mro__:
        for member in vars(klass).values():
            for names, regex in getattr(member, READS_ATTR, None) or ():
                readers.append((member, names, regex))
            for prop, cmd in (getattr(member, WRITES_ATTR, None) or {}).items():
                writers.setdefault(prop, (member, cmd))
    return readers, writers


def property_names(cls: type) -> list[str]:
    """Every property the class's decorators name, in order of first mention."""
    readers, writers = registrations(cls)
    names: dict[str, None] = {}
    for _, props, _ in readers:
        names.update(dict.fromkeys(props))
    names.update(dict.fromkeys(writers))
    return list(names)
