"""The runtime: transports, framing, component engines, things and the shadow client.

The names below are the runtime's public surface. They load on first use: the shadow client
imports awscrt, which is slow to load, and commands such as `pyiot compile` never need it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyiot.runtime.broker import Broker, BrokerAddress, TlsEndpoint
    from pyiot.runtime.component import ComponentEngine, DeviceError, EngineConfig
    from pyiot.runtime.gateway import Gateway
    from pyiot.runtime.modes import ModeRefused
    from pyiot.runtime.protocol import BadReply
    from pyiot.runtime.shadow_client import ShadowConnection, ShadowError, ShadowTimeout
    from pyiot.runtime.thing import ThingRuntime
    from pyiot.runtime.transport import Link, LinkClosed, open_link

# Public name -> the module that defines it.
_WHERE = {
    "Broker": "broker",
    "BrokerAddress": "broker",
    "TlsEndpoint": "broker",
    "ComponentEngine": "component",
    "DeviceError": "component",
    "EngineConfig": "component",
    "Gateway": "gateway",
    "ModeRefused": "modes",
    "BadReply": "protocol",
    "ShadowConnection": "shadow_client",
    "ShadowError": "shadow_client",
    "ShadowTimeout": "shadow_client",
    "ThingRuntime": "thing",
    "Link": "transport",
    "LinkClosed": "transport",
    "open_link": "transport",
}

__all__ = [
    "BadReply",
    "Broker",
    "BrokerAddress",
    "ComponentEngine",
    "DeviceError",
    "EngineConfig",
    "Gateway",
    "Link",
    "LinkClosed",
    "ModeRefused",
    "ShadowConnection",
    "ShadowError",
    "ShadowTimeout",
    "ThingRuntime",
    "TlsEndpoint",
    "open_link",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"pyiot.runtime.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'pyiot.runtime' has no attribute {name!r}")
