"""The original pyIOT Python API (`Component`, `Thing`) on pyiot's engine and shadow runtime.

    from pyiot import Component, Thing

A `Component` subclass with `componentToProperty` / `propertyToComponent` methods becomes the
same device model a `.iot` file gives and runs on the same `ComponentEngine`; a `Thing` runs
its components' properties in one Device Shadow with pyiot's `ThingRuntime`. See
docs/python-api.md.
"""

from pyiot.legacy.component import Component
from pyiot.legacy.thing import Thing

__all__ = ["Component", "Thing"]
