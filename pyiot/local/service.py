"""What the local stack's parts share: started and stopped, or used in a `with` block."""

from __future__ import annotations

import abc
from typing import Any, TypeVar

_S = TypeVar("_S", bound="Service")


class Service(abc.ABC):
    """A part with `start()` and `stop()`; `with part:` starts it and always stops it."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
