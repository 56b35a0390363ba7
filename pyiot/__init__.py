"""pyiot: put serial and TCP devices on AWS IoT Core (or a local broker) from a `.iot` file.

`from pyiot import Component, Thing` gives the original pyIOT Python API (see
docs/python-api.md); it loads on first use, so `import pyiot` stays light. `PyiotError` is
the base class of every error pyiot raises on purpose (`pyiot.errors`).
"""

from typing import Any

from pyiot.errors import PyiotError

__version__ = "0.2.0"

__all__ = ["Component", "PyiotError", "Thing", "__version__"]

_LEGACY = ("Component", "Thing")


def __getattr__(name: str) -> Any:
    if name in _LEGACY:
        from pyiot import legacy

        return getattr(legacy, name)
    raise AttributeError(f"module 'pyiot' has no attribute {name!r}")
