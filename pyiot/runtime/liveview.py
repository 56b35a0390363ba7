"""The live table `pyiot run` shows in a terminal: every component, its state and its values.

One row per component: thing, component (and device), the protocol machine's state (and the
device mode), online or offline since when, the property values (a value that just changed is
highlighted for a moment), and the last error. Log records and the run's own lines print above
the table, their time in ISO 8601.

The table fits the terminal: when the full rows (one line per property) are taller than the
terminal, each component gets one line with its values side by side, cut at the terminal's
width; when even those do not fit, components that need attention (offline, in error) come
first and a last line sums up the rest.

Nothing here blocks the event loop. The engines' listeners only note when something changed;
a task on the loop takes a snapshot (plain data) four times a second and, when it differs from
the last one, builds a new table and swaps it in. rich's refresh thread draws whatever table is
current; it never reads an engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from pyiot.lang.values import render_value
from pyiot.runtime.component import ComponentEngine, ComponentStatus

# How long a value that just changed stays highlighted.
HIGHLIGHT_SECONDS = 2.0
# Log times, ISO 8601 (local time), instead of rich's locale `[12/01/26 10:00:00]`.
LOG_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
# Terminal lines left to the log records above the table.
LOG_LINES = 2
# Lines a compact table takes besides its rows: title, header (3), bottom border, caption.
_COMPACT_FRAME = 6


@dataclass(frozen=True)
class Row:
    """What one component's row shows, as plain data (compared to skip needless redraws)."""

    thing: str
    component: str
    device: str
    state: str
    mode: str | None
    online: bool
    since: str
    values: tuple[tuple[str, str | None, bool], ...]  # (property, shown value, just changed)
    last_error: str | None
    unrecognised: int


class LiveView:
    """A `rich.live.Live` table over the engines of a run.

    `engines` maps `thing.component` to its engine (as `Gateway.engines` does). `render()`
    builds the table from the engines as they are now; `start()`/`stop()` show it on
    `console` and keep it current while the loop runs.
    """

    def __init__(
        self,
        engines: Mapping[str, ComponentEngine],
        console: Console | None = None,
        *,
        title: str = "pyiot",
        refresh_per_second: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.engines = dict(engines)
        self.console = console or Console()
        self.title = title
        self.caption = "Ctrl-C to stop"
        self.refresh_per_second = refresh_per_second
        self._clock = clock
        started = time.strftime("%H:%M:%S")
        self._changed_at: dict[tuple[str, str], float] = {}
        self._status_since: dict[str, str] = {key: started for key in self.engines}
        self._online: dict[str, bool] = {k: e.status.online for k, e in self.engines.items()}
        self._listeners: list[tuple[ComponentEngine, Callable, Callable]] = []
        self._rows: tuple[Row, ...] = ()
        self._size = self.console.size
        self._table: Table = self._table_of(self._rows)
        self._live: Live | None = None
        self._task: asyncio.Task | None = None
        self._saved_handlers: list[logging.Handler] | None = None

    # ---------------------------------------------------------------------------- listening
    def _listen(self) -> None:
        for key, engine in self.engines.items():

            def on_value(component: str, prop: str, value: Any, key: str = key) -> None:
                self._changed_at[(key, prop)] = self._clock()

            def on_status(component: str, status: ComponentStatus, key: str = key) -> None:
                if status.online != self._online.get(key):
                    self._online[key] = status.online
                    self._status_since[key] = time.strftime("%H:%M:%S")

            engine.value_listeners.append(on_value)
            engine.status_listeners.append(on_status)
            self._listeners.append((engine, on_value, on_status))

    def _unlisten(self) -> None:
        for engine, on_value, on_status in self._listeners:
            with contextlib.suppress(ValueError):
                engine.value_listeners.remove(on_value)
            with contextlib.suppress(ValueError):
                engine.status_listeners.remove(on_status)
        self._listeners = []

    # ---------------------------------------------------------------------------- rendering
    def rows(self) -> tuple[Row, ...]:
        """The engines as they are now, one row each."""
        now = self._clock()
        rows = []
        for key, engine in self.engines.items():
            thing, _, component = key.rpartition(".")
            values = tuple(
                (
                    prop,
                    render_value(engine.values[prop]) if prop in engine.values else None,
                    now - self._changed_at.get((key, prop), -HIGHLIGHT_SECONDS) < HIGHLIGHT_SECONDS,
                )
                for prop in engine.device.properties
            )
            status = engine.status
            rows.append(
                Row(
                    thing=thing,
                    component=component or engine.name,
                    device=engine.device.name,
                    state=str(getattr(engine, "state", status.state)),
                    mode=status.mode,
                    online=status.online,
                    since=self._status_since.get(key, ""),
                    values=values,
                    last_error=status.last_error,
                    unrecognised=status.unrecognised_lines,
                )
            )
        return tuple(rows)

    def render(self) -> Table:
        """The table for the engines as they are now."""
        return self._table_of(self.rows())

    def _table_of(self, rows: tuple[Row, ...]) -> Table:
        """The full table when it fits the terminal's height, else the compact one."""
        full = self._full_table(rows)
        budget = max(self.console.size.height - LOG_LINES, _COMPACT_FRAME + 2)
        options = self.console.options
        if len(self.console.render_lines(full, options, pad=False)) <= budget:
            return full
        return self._compact_table(rows, budget - _COMPACT_FRAME)

    def _compact_table(self, rows: tuple[Row, ...], room: int) -> Table:
        """One line per component, values side by side; at most `room` lines of rows."""
        online = sum(row.online for row in rows)
        things = sorted({row.thing for row in rows})
        title = f"{self.title}: {online}/{len(rows)} components online"
        if len(things) == 1:
            title += f" (thing {things[0]})"
        table = Table(title=title, caption=self.caption, expand=True)
        table.add_column("component", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("online", no_wrap=True)
        table.add_column("properties", no_wrap=True, overflow="ellipsis", ratio=1)
        table.add_column("last error", no_wrap=True, overflow="ellipsis", max_width=24)
        shown = rows
        if len(rows) > room:
            # Those that need attention first; the last line sums up the ones left out.
            urgent = [r for r in rows if not r.online or r.last_error]
            shown = tuple((urgent + [r for r in rows if r not in urgent])[: max(room - 1, 0)])
        for row in shown:
            name = row.component if len(things) == 1 else f"{row.thing}.{row.component}"
            table.add_row(
                name,
                row.state + (f" ({row.mode})" if row.mode else ""),
                Text("online", "green") if row.online else Text("offline", "red"),
                _values_line(row),
                Text(row.last_error, "red")
                if row.last_error
                else Text(f"{row.unrecognised} unrecognised", "dim")
                if row.unrecognised
                else Text("-", "dim"),
            )
        if len(shown) < len(rows):
            rest = [r for r in rows if r not in shown]
            up = sum(r.online for r in rest)
            table.add_row(
                Text(f"+{len(rest)} more", "dim"),
                "",
                Text(f"{up} online", "dim"),
                Text(f"{len(rest) - up} offline (a taller terminal shows them)", "dim"),
                "",
            )
        return table

    def _full_table(self, rows: tuple[Row, ...]) -> Table:
        online = sum(row.online for row in rows)
        table = Table(
            title=f"{self.title}: {online}/{len(rows)} components online",
            caption=self.caption,
            expand=False,
        )
        table.add_column("thing", style="bold")
        table.add_column("component")
        table.add_column("state")
        table.add_column("online")
        table.add_column("properties")
        table.add_column("last error", overflow="fold", max_width=40)
        for row in rows:
            table.add_row(
                row.thing,
                Text.assemble(row.component, (f"\n{row.device}", "dim")),
                Text(row.state + (f"\nmode {row.mode}" if row.mode else "")),
                Text(f"online\nsince {row.since}", "green")
                if row.online
                else Text(f"offline\nsince {row.since}", "red"),
                _values_text(row),
                Text(row.last_error, "red") if row.last_error else Text("-", "dim"),
            )
        return table

    # ------------------------------------------------------------------------------ running
    async def start(self) -> None:
        """Show the table and keep it current; log records print above it."""
        self._listen()
        self._rows = self.rows()
        self._table = self._table_of(self._rows)
        self._live = Live(
            console=self.console,
            refresh_per_second=self.refresh_per_second,
            get_renderable=lambda: self._table,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._live.start()
        self._take_over_logging()
        self._task = asyncio.get_running_loop().create_task(self._follow(), name="live view")

    async def _follow(self) -> None:
        period = 1.0 / self.refresh_per_second
        while True:
            await asyncio.sleep(period)
            rows = self.rows()
            size = self.console.size
            if rows != self._rows or size != self._size:  # a change, or a resized terminal
                self._rows, self._size = rows, size
                self._table = self._table_of(rows)  # one assignment: rich's thread sees either

    async def stop(self) -> None:
        """Draw the last table, give the terminal back, and restore the log handlers."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._unlisten()
        self._restore_logging()
        if self._live is not None:
            self._table = self.render()
            self._live.stop()
            self._live = None

    def _take_over_logging(self) -> None:
        """Records go to the live console (above the table) instead of the raw stderr."""
        root = logging.getLogger()
        self._saved_handlers = list(root.handlers)
        level = min((h.level for h in root.handlers), default=logging.NOTSET)
        handler = RichHandler(
            console=self.console,
            show_path=False,
            markup=False,
            level=level,
            log_time_format=LOG_TIME_FORMAT,
        )
        for old in self._saved_handlers:
            root.removeHandler(old)
        root.addHandler(handler)

    def _restore_logging(self) -> None:
        if self._saved_handlers is None:
            return
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in self._saved_handlers:
            root.addHandler(handler)
        self._saved_handlers = None


def _values_text(row: Row) -> Text:
    """One `name = value` per line, then the count of unrecognised lines."""
    text = _pairs(row, separator="\n", equals=" = ")
    if row.unrecognised:
        text.append(f"\n({row.unrecognised} unrecognised lines)", "dim")
    return text


def _values_line(row: Row) -> Text:
    """`name=value` pairs on one line (the cell cuts what the terminal has no room for)."""
    return _pairs(row, separator=" ", equals="=")


def _pairs(row: Row, separator: str, equals: str) -> Text:
    text = Text()
    for index, (prop, value, recent) in enumerate(row.values):
        if index:
            text.append(separator)
        text.append(f"{prop}{equals}")
        if value is None:
            text.append("?", "dim")
        else:
            text.append(value, "bold yellow" if recent else "cyan")
    return text
