"""Log output for `pyiot run`: one JSON object per line, tagged with the thing and component.

`--log-format json` puts a `JsonFormatter` on the root handlers: every record becomes one line
`{"time", "level", "logger", "message", ...}` with any extra fields the record carries
(`logger.warning(..., extra={"component": name})`) and the traceback as `exception`.

pyiot's runtime writes its messages as `NAME: what happened` with NAME the thing or the
component as the first argument; `NameTagger` turns that name into `thing`/`component` fields,
so log collectors can filter on them without parsing the text.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterable
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=` or a filter.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: time (UTC, ISO 8601), level, logger, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        entry: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=repr, ensure_ascii=False)


class NameTagger(logging.Filter):
    """Adds `thing` and `component` to records whose message starts with a known name.

    `things` maps each thing name to its component names. A component name used by one thing
    only also tags that thing. Fields a record already has (from `extra=`) are kept.
    """

    def __init__(self, things: dict[str, Iterable[str]]):
        super().__init__()
        self.things = set(things)
        owners: dict[str, list[str]] = {}
        for thing, components in things.items():
            for component in components:
                owners.setdefault(component, []).append(thing)
        self.owners = owners

    def filter(self, record: logging.LogRecord) -> bool:
        name = _leading_name(record)
        if name is None:
            return True
        if name in self.things:
            record.__dict__.setdefault("thing", name)
        elif name in self.owners:
            record.__dict__.setdefault("component", name)
            if len(self.owners[name]) == 1:
                record.__dict__.setdefault("thing", self.owners[name][0])
        return True


def _leading_name(record: logging.LogRecord) -> str | None:
    """The NAME of a `"%s: ..."` message, or None."""
    if not isinstance(record.msg, str) or not record.msg.startswith("%s: "):
        return None
    args = record.args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def use_json_logs(tagger: logging.Filter | None = None) -> None:
    """Switch every root handler to JSON lines (and tag names, given a tagger)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())
        if tagger is not None:
            handler.addFilter(tagger)
