"""What a legacy component's messages mean, and how they are framed on the wire.

`LegacyProtocol` is the `DeviceProtocol` the component engine consults for a legacy component:
the same questions ("what do I send for this set?", "what does this line say?") answered the
original pyIOT's way. A message is decoded by the first `componentToProperty` regex that
matches it from its start; a set is its `propertyToComponent` format filled positionally
(`'P1P{0}'`) with what the method returned; the queries come from `queryStatus()` as text.

Synchronous components (`synchronous=True`) have one request outstanding, and whatever the
device says next answers it: a message some regex decodes, or a bare `eol` (the Epson's `:`
after a command it took). A message no regex knows is the device refusing (the shadow shows
the rejection). Asynchronous components send and move on; every message is routed as it comes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pyiot.lang.diagnostics import SourcePos
from pyiot.lang.model import GroupQuery, Property, Regex, Value
from pyiot.lang.values import BadValue
from pyiot.legacy.model import LegacyModel
from pyiot.runtime.framing import LineFramer
from pyiot.runtime.protocol import DeviceProtocol, PollGroup, Request

_LOGGER = logging.getLogger("pyiot.legacy")

# Bytes that cannot be decoded survive a round trip through text unchanged.
_ERRORS = "surrogateescape"


class LegacyProtocol(DeviceProtocol):
    """The protocol of one legacy component (see the module's docstring)."""

    def __init__(self, name: str, model: LegacyModel, synchronous: bool):
        super().__init__(model.device, {}, model.hooks)
        self.name = name
        self.routes = model.routes
        self.synchronous = synchronous
        self._queries: dict[str, GroupQuery] = {}

    # requests -------------------------------------------------------------------------------
    def set_request(self, prop_name: str, value: object) -> Request:
        """The command for a wanted value: the method's result in the property's format."""
        prop = self.device.properties.get(prop_name)
        if prop is None:
            raise BadValue(f"unknown property {prop_name!r}")
        if prop.set_format is None:
            raise BadValue(f"{prop_name} is read-only (no propertyToComponent method)")
        try:
            wire = self.hooks[prop_name]["encode"](value)
            text = prop.set_format.format(wire, value=wire)
        except (ValueError, TypeError, AssertionError, LookupError) as err:
            raise BadValue(f"{prop_name}: {err}") from None
        return Request("set", text, prop=prop, value=value)  # type: ignore[arg-type]

    def query(self, text: str | bytes) -> GroupQuery:
        """A `queryStatus()` query as a read target (one per distinct text)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", _ERRORS)
        target = self._queries.get(text)
        if target is None:
            target = GroupQuery(text, text, Regex(""), SourcePos("<queryStatus>", 1, 1))
            self._queries[text] = target
        return target

    def read_request(self, target: Property | GroupQuery) -> Request:
        if isinstance(target, GroupQuery) and target.name in self._queries:
            return Request("group", target.query, group=target)
        raise BadValue(f"{self.name} is read through queryStatus(), not property by property")

    def poll_groups(self) -> list[PollGroup]:
        return []  # the engine's pollers stay idle: `LegacyEngine` polls with queryStatus()

    def readable_targets(self) -> list[Property | GroupQuery]:
        return []

    def expects_answer(self, request: Request) -> bool:
        return self.synchronous

    # lines ----------------------------------------------------------------------------------
    def answers(self, request: Request, line: str) -> dict[str, Value] | None:
        """A synchronous request is answered by the next message that means anything; an
        asynchronous one by nothing (it was done once written)."""
        if not self.synchronous:
            return None
        if not line:
            return {}
        return self.unsolicited(line)

    def acknowledges(self, request: Request, line: str) -> bool:
        return False

    def is_error(self, line: str, request: Request | None = None) -> bool:
        # Asked only while a request waits, of a line `answers` did not know.
        return self.synchronous

    def unsolicited(self, line: str) -> dict[str, Value] | None:
        """The values a message gives, decoded by the first route that matches it."""
        if not line:
            return {}
        for route in self.routes:
            found = route.pattern.match(line)
            if found is None:
                continue
            values: dict[str, Value] = {}
            for field, prop in route.fields:
                value = self._decode(route.decoders[prop], route.where, prop, found.group(field))
                if value is not None:
                    values[prop] = value
            return values
        _LOGGER.debug("%s: no componentToProperty method matches %r", self.name, line)
        return None

    def _decode(self, decoder: Any, where: str, prop: str, wire: str | None) -> Value | None:
        try:
            return decoder(wire)
        except (ValueError, TypeError, AssertionError) as err:
            _LOGGER.warning(
                "%s: %s could not read %s from %r: %s", self.name, where, prop, wire, err
            )
        except Exception:
            _LOGGER.exception("%s: %s failed on %r", self.name, where, wire)
        return None


@dataclass
class LegacyFramer(LineFramer):
    """Messages end with the component's `eol`; commands go out as the methods wrote them.

    Unlike `.iot` lines, a message is passed on as received (a `\\r` before an `eol` of `:`
    stays, as in the original) and an empty one too: a bare `eol` is the device saying "done".
    A command gets `eol` appended only when it has no line ending of its own and `eol` is one.
    """

    keep_empty: bool = True

    def encode(self, text: str) -> bytes:
        if not text.endswith(("\r", "\n")) and not self.terminator.strip("\r\n"):
            text += self.terminator
        return text.encode("utf-8", _ERRORS)
