"""The desired keys a thing rejected, as shown in `reported.pyiot.rejected`, bounded in bytes.

The shadow holds 8 KB of state for everything (properties, desired, pyiot's status), so what
pyiot shows of rejections must stay small whatever the application sends: each entry's name,
value and reason are shortened, and the oldest entries make way while there are more than ten
or more than 3 KB of them. The newest entry always fits. No I/O.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pyiot.runtime.documents import Path, dotted, echo

#: Entries shown at most, and the bytes they may take together.
MAX_REJECTIONS_SHOWN = 10
REJECTIONS_BUDGET = 3072
# A rejected key's name and reason are shortened to this many characters when shown.
_NAME_SHOWN, _REASON_SHOWN = 64, 320


class Rejections:
    """Name -> {"value", "reason"}, oldest first."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self.entries)

    def add(self, key: Path, value: Any, reason: str) -> tuple[str, dict[str, Any]]:
        """Record a rejection; return its shown name and the change to `rejected` (the new
        entry, and `None` for each entry that made way)."""
        name = shown_name(key)
        entry = {"value": echo(value), "reason": short(reason, _REASON_SHOWN)}
        self.entries.pop(name, None)  # the newest go last: the oldest make way first
        self.entries[name] = entry
        change: dict[str, Any] = {name: entry}
        while len(self.entries) > 1 and (
            len(self.entries) > MAX_REJECTIONS_SHOWN or _size(self.entries) > REJECTIONS_BUDGET
        ):
            oldest = next(iter(self.entries))
            del self.entries[oldest]
            change[oldest] = None
        return name, change

    def clear(self, key: Path) -> str | None:
        """Forget the rejection of `key`; its shown name if there was one."""
        name = shown_name(key)
        return name if self.entries.pop(name, None) is not None else None

    def drop_all(self) -> None:
        self.entries.clear()


def short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown_name(key: Path) -> str:
    """A rejected key's name in `reported.pyiot.rejected`: dotted, and shortened when long
    (with a digest, so that two long names stay apart and the same one maps to the same)."""
    name = dotted(key)
    if len(name) <= _NAME_SHOWN:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{name[: _NAME_SHOWN - 12]}...~{digest}"


def _size(document: dict[str, Any]) -> int:
    return len(json.dumps(document, separators=(",", ":")))
