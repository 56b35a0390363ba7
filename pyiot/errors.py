"""The root of every error pyiot raises on purpose.

Each pyiot exception derives from :class:`PyiotError`, most also from the builtin a caller
already catches (``class BadValue(PyiotError, ValueError)``), so callers catch by kind and read
fields, never message text:

* ``what``: the kind of failure in a few words ("shadow request failed"), the same for every
  instance of a class; the message (``str(err)``) says what happened and what to do.
* ``code``: a number or name to branch on where the source of the failure has one (the shadow
  service's HTTP-style status, say); ``None`` where none exists.

No imports from the rest of pyiot: every package may import this module.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["PyiotError"]


class PyiotError(Exception):
    """Base class of pyiot's errors; see the module docstring for its fields."""

    what: ClassVar[str] = "pyiot error"
    #: Overridden per instance by the classes that have one.
    code: int | str | None = None
