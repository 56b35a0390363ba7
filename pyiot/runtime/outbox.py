"""A thing's report outbox: engine values and cleared wishes -> shadow updates.

What the thing has to say (changed values under `reported`, handled keys to clear from
`desired` as `null`) is merged into one pending update. At most one update per thing is in
flight: what arrives meanwhile is merged into the pending one (newer values win, nothing is
dropped) and goes out as soon as the one in flight is answered. Device-side bursts wait a short
window (`REPORT_WINDOW`) so that several properties go as one update; an urgent change (a
command confirmed, a rejection) goes out at once, in the loop iteration that produced it.

An update is a plain QoS 1 publish on `$aws/things/T/shadow[/name/N]/update` with a
`clientToken`; the service's answer on `update/accepted` or `update/rejected` echoes the token
and ends the exchange (`ShadowConnection.publish_report` and `watch_updates`). A refused update:

- 400/413 (malformed, too large): never taken as it is, so sent again smaller (without the
  rejections shown, then pyiot's status alone); only what no form can carry is dropped, said so;
- 429 (throttled: AWS takes 20 requests a second per thing): the merged latest is sent again
  after `THROTTLED_RETRY`;
- anything else, or no answer within `UPDATE_TIMEOUT` of the broker's PUBACK: sent again with a
  backoff doubling from `RETRY_MIN` to `RETRY_MAX` (an urgent change cuts the wait short).

Pacing: an optional `budget` (see `Budget`) is asked before each publish; issue 16 shares one
per connection so that many things stay within a connection's publish rate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from pyiot.runtime.documents import merge
from pyiot.runtime.rejections import Rejections
from pyiot.runtime.shadow_client import ShadowConnection, ShadowError, ShadowTimeout

_LOGGER = logging.getLogger("pyiot.runtime.thing")

# pyiot's own status lives under this key in `reported` (properties may not use it).
STATUS_KEY = "pyiot"
# Device-side changes come in bursts (several properties in one reply, every poll on
# connect): wait this long to send them as one update.
REPORT_WINDOW = 0.02
# A failed update is tried again after this, doubling up to the maximum.
RETRY_MIN, RETRY_MAX = 0.5, 10.0
# An update the broker took (PUBACK) but the service left unanswered this long is sent again
# (the service was away; sending the same state twice is harmless).
UPDATE_TIMEOUT = 3.0
# A throttled update (429) is sent again after this.
THROTTLED_RETRY = 0.25
# Answers of the service to a document it will never take as it is: malformed (400, e.g. too
# deep) or too large (413).
TOO_BIG = (400, 413)


class Budget(Protocol):
    """A publish budget shared by the outboxes of one connection (issue 16).

    Before each publish the outbox calls `try_acquire(nbytes)` (`nbytes`: the update's cost,
    `ShadowConnection.request_size`, as for every other request): True spends one publish of
    that size now, and the report goes out in this loop iteration. On False it awaits
    `acquire(nbytes)`, which returns once that publish may go, then publishes. Nothing is
    given back: one call, one publish. A budget of None (the
    default) is unlimited and costs nothing.
    """

    def try_acquire(self, nbytes: int) -> bool: ...

    async def acquire(self, nbytes: int) -> None: ...


def error_code(err: BaseException) -> int | None:
    """The service's status code of a refused request (413), None if it did not answer."""
    code = getattr(err, "code", None)
    return code if isinstance(code, int) else None


class Outbox:
    """One thing's reports: pending, in flight (one), answered."""

    def __init__(
        self,
        thing: str,
        shadow: ShadowConnection,
        rejections: Rejections,
        components: Callable[[], dict[str, Any]],
        shadow_name: str | None = None,
        budget: Budget | None = None,
    ):
        """`rejections` and `components()` (name -> {"online", "error"}) give what a refused
        update is sent again with, smaller."""
        self.thing = thing
        self.shadow = shadow
        self.shadow_name = shadow_name
        self.budget = budget
        self._rejections = rejections
        self._components = components
        self._reported: dict[str, Any] = {}  # pending: not sent yet
        self._desired: dict[str, Any] = {}
        # Every token of this outbox starts with it: the connection drops others' answers.
        self.token_prefix = uuid.uuid4().hex[:12] + "-"
        self._tokens = itertools.count()
        # The update in flight: (token, reported, desired, the broker's PUBACK).
        self._inflight: tuple[str, dict, dict, concurrent.futures.Future] | None = None
        self._timer: asyncio.TimerHandle | None = None  # the in-flight update's answer timeout
        self._window: asyncio.TimerHandle | None = None  # a burst gathering
        self._hold: asyncio.TimerHandle | None = None  # a backoff after a failure
        self._hold_breakable = True  # an urgent change may cut the backoff short (not a 429)
        self._acquiring: asyncio.Task | None = None
        self._ready = False
        self._closed = False
        self._together = 0  # inside `together()`: hold sends until its end
        # One context manager object for every `together()`, not a generator per call: it
        # is on the path of every delta (the count above makes it nest).
        self._held = _Together(self)
        self._urgent_held = False
        self._delay = RETRY_MIN
        self._failing = False
        self.published = 0

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    # what to say ---------------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        return bool(self._reported or self._desired)

    def report(self, changes: dict[str, Any], urgent: bool = False) -> None:
        """Merge `changes` into the pending `reported`; send now if `urgent`."""
        self._reported = merge(self._reported, changes)
        self._pump(urgent)

    def replace_reported(self, reported: dict[str, Any]) -> None:
        """Make the pending `reported` exactly this (after a get showed what the shadow lacks)."""
        self._reported = reported

    def clear_desired(self, changes: dict[str, Any], urgent: bool = True) -> None:
        """Merge `changes` (keys -> None) into the pending `desired`."""
        self._desired = merge(self._desired, changes)
        self._pump(urgent)

    def stage_desired(self, changes: dict[str, Any]) -> None:
        """Merge `changes` (keys -> None) into the pending `desired` without sending, for a
        caller whose `report` follows in the same breath: one update, and no send window
        opened only to be closed again."""
        self._desired = merge(self._desired, changes)

    def ready(self) -> None:
        """The shadow has been read: reports may go (before, a device's first values cannot be
        compared with what the shadow shows)."""
        self._ready = True
        self._pump(urgent=True)

    def flush(self) -> None:
        """Send what is pending now (urgent)."""
        self._pump(urgent=True)

    def close(self) -> None:
        """Stop sending; pending changes stay (`final` may take them)."""
        self._closed = True
        for handle in (self._timer, self._window, self._hold):
            if handle is not None:
                handle.cancel()
        if self._acquiring is not None:
            self._acquiring.cancel()

    # the exchange --------------------------------------------------------------------------
    def together(self) -> contextlib.AbstractContextManager[None]:
        """Changes made inside go out as one update at the end (one delta's keys, a
        rejection and its cleared wish): nothing is sent in between. Nests."""
        return self._held

    def _hold_sends(self) -> None:
        self._together += 1

    def _release_sends(self) -> None:
        self._together -= 1
        if not self._together and self._urgent_held:
            self._urgent_held = False
            self._pump(urgent=True)

    def _pump(self, urgent: bool) -> None:
        """Send the pending update if it may go now; else make sure something will send it."""
        if self._together:
            self._urgent_held = self._urgent_held or urgent
            return
        if self._closed or not self._ready or self._inflight is not None or not self.pending:
            return
        if self._acquiring is not None and not self._acquiring.done():
            return
        if self._hold is not None:
            if not (urgent and self._hold_breakable):
                return
            self._hold.cancel()
            self._hold = None
        if not urgent:
            if self._window is None:
                self._window = self._loop.call_later(REPORT_WINDOW, self._window_over)
            return
        if self._window is not None:
            self._window.cancel()
            self._window = None
        if self.budget is not None:
            # Sized as the connection sizes every request (on AWS, as awscrt's own limiter
            # will charge it), so that reports and gets share one account.
            state = {"reported": self._reported or None, "desired": self._desired or None}
            nbytes = self.shadow.request_size(self.thing, self.shadow_name, "update", state)
            if not self.budget.try_acquire(nbytes):
                self._acquiring = self._loop.create_task(
                    self._acquire_then_send(nbytes), name=f"{self.thing}:budget"
                )
                return
        self._send()

    def _window_over(self) -> None:
        self._window = None
        self._pump(urgent=True)

    def _hold_over(self) -> None:
        self._hold = None
        self._pump(urgent=True)

    async def _acquire_then_send(self, nbytes: int) -> None:
        assert self.budget is not None
        await self.budget.acquire(nbytes)
        if not self._closed and self._inflight is None and self.pending:
            self._send()

    def _send(self) -> None:
        reported, self._reported = self._reported, {}
        desired, self._desired = self._desired, {}
        token = f"{self.token_prefix}{next(self._tokens)}"
        try:
            acked = self.shadow.publish_report(
                self.thing,
                token,
                reported or None,
                desired or None,
                self.shadow_name,
                on_failure=self._publish_failed,
            )
        except (ShadowError, ConnectionError) as err:
            self._failed(reported, desired, err)
            return
        self.published += 1
        self._inflight = (token, reported, desired, acked)
        self._timer = self._loop.call_later(UPDATE_TIMEOUT, self._unanswered, token)

    def _publish_failed(self, acked: concurrent.futures.Future, error: BaseException) -> None:
        """The publish itself failed (the client stopping, a refused PUBACK)."""
        inflight = self._inflight
        if inflight is not None and inflight[3] is acked:
            self._end_inflight()
            self._failed(inflight[1], inflight[2], error)

    def _unanswered(self, token: str) -> None:
        inflight = self._inflight
        self._timer = None
        if inflight is None or inflight[0] != token:
            return
        if not inflight[3].done():
            # Still queued in the client (disconnected): it goes out on reconnect. Sending it
            # again now would only queue a second copy behind it.
            self._timer = self._loop.call_later(UPDATE_TIMEOUT, self._unanswered, token)
            return
        self._end_inflight()
        lost = ShadowTimeout(f"no answer within {UPDATE_TIMEOUT:g} s")
        self._failed(inflight[1], inflight[2], lost)

    def _end_inflight(self) -> None:
        self._inflight = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_answer(self, token: str, code: int | None, message: str) -> None:
        """The service answered an update (`code` None: accepted). Others' tokens are ignored."""
        inflight = self._inflight
        if inflight is None or inflight[0] != token or self._closed:
            return
        self._end_inflight()
        _, reported, desired, _ = inflight
        if code is None:
            self._delay = RETRY_MIN
            if self._failing:
                _LOGGER.warning("%s: shadow updates work again", self.thing)
                self._failing = False
            self._pump(urgent=True)  # what came meanwhile goes out together, now
            return
        err = ShadowError(f"{code} {message}", code=code)
        if code in TOO_BIG:
            # The service will never take this document as it is: send it smaller.
            self._shrink(reported, desired, err)
            self._pump(urgent=True)
            return
        self._failed(reported, desired, err, code)

    def _failed(
        self, reported: dict, desired: dict, err: BaseException, code: int | None = None
    ) -> None:
        # Keep what was not sent; newer values win.
        self._reported = merge(reported, self._reported)
        self._desired = merge(desired, self._desired)
        if code == 429:
            # Throttled (too many requests to this thing this second): soon again.
            _LOGGER.debug("%s: shadow update throttled; retrying", self.thing)
            self._hold_for(THROTTLED_RETRY, breakable=False)
            return
        (_LOGGER.debug if self._failing else _LOGGER.warning)(
            "%s: shadow update failed (%s); retrying", self.thing, err
        )
        self._failing = True
        self._hold_for(self._delay, breakable=True)
        self._delay = min(self._delay * 2, RETRY_MAX)

    def _hold_for(self, seconds: float, breakable: bool) -> None:
        if self._closed:
            return
        if self._hold is not None:
            self._hold.cancel()
        self._hold_breakable = breakable
        self._hold = self._loop.call_later(seconds, self._hold_over)

    def _shrink(self, reported: dict[str, Any], desired: dict[str, Any], err: Exception) -> None:
        """Queue a smaller form of a refused update: first without the rejections (deleting
        those the shadow shows), then with pyiot's status alone. Only what no form can carry
        is dropped, and said so; the components' status always goes."""
        status = reported.get(STATUS_KEY)
        carried = isinstance(status, dict) and status.get("rejected") is not None
        if carried or self._rejections:
            _LOGGER.warning(
                "%s: shadow refused the update (%s); sending it without the rejections",
                self.thing,
                err,
            )
            self._rejections.drop_all()
            smaller = merge(reported, {STATUS_KEY: {"rejected": None}})
            self._reported = merge(smaller, self._reported)
            self._desired = merge(desired, self._desired)
            return
        if not set(reported) <= {STATUS_KEY}:
            dropped = sorted(key for key in reported if key != STATUS_KEY)
            _LOGGER.error(
                "%s: shadow refused the update (%s); reporting pyiot's status without %s",
                self.thing,
                err,
                ", ".join(dropped),
            )
            components = {STATUS_KEY: {"components": self._components(), "rejected": None}}
            self._reported = merge(components, self._reported)
            self._desired = merge(desired, self._desired)
            return
        _LOGGER.error("%s: shadow refused pyiot's status %s: %s", self.thing, reported, err)

    # the last word -------------------------------------------------------------------------
    async def final(self, status: dict[str, Any], timeout: float) -> None:
        """One last update, after `close()`: what was not sent yet with `status` merged over
        it, or `status` alone (deleting the rejections shown) if that is too large. Waits
        `timeout` at most; logs, never raises."""
        self.close()
        deadline = self._loop.time() + timeout
        if self._inflight is not None:
            # Its content goes again with the rest: newer values win.
            _, reported, desired, _ = self._inflight
            self._reported = merge(reported, self._reported)
            self._desired = merge(desired, self._desired)
            self._inflight = None
        bare = {STATUS_KEY: {**status[STATUS_KEY], "rejected": None}}
        attempts = [(merge(self._reported, status), self._desired), (bare, {})]
        while attempts and self._loop.time() < deadline:
            reported, desired = attempts[0]
            try:
                await self._exchange(reported, desired, deadline - self._loop.time())
                return
            except (ShadowError, ConnectionError) as err:
                code = error_code(err)
                if code in TOO_BIG:
                    attempts.pop(0)
                elif code == 429:
                    left = max(0.0, deadline - self._loop.time())
                    await asyncio.sleep(min(THROTTLED_RETRY, left))
                else:
                    _LOGGER.warning("%s: could not report offline: %s", self.thing, err)
                    return
        if attempts:
            _LOGGER.warning("%s: could not report offline within %g s", self.thing, timeout)
        else:
            _LOGGER.error("%s: the shadow refused even the offline status", self.thing)

    async def _exchange(self, reported: dict, desired: dict, timeout: float) -> None:
        """Publish one update and wait for its answer (raising ShadowError if refused)."""
        token = f"{self.token_prefix}{next(self._tokens)}"
        answered: asyncio.Future = self._loop.create_future()
        self._final_waiting = (token, answered)
        self.shadow.publish_report(
            self.thing, token, reported or None, desired or None, self.shadow_name
        )
        try:
            code, message = await asyncio.wait_for(answered, timeout)
        except asyncio.TimeoutError:
            raise ShadowTimeout(f"no answer within {timeout:g} s") from None
        finally:
            self._final_waiting = None
        if code is not None:
            raise ShadowError(f"{code} {message}", code=code)

    _final_waiting: tuple[str, asyncio.Future] | None = None

    def answer(self, token: str, code: int | None, message: str) -> None:
        """Route a service answer (from `ShadowConnection.watch_updates`)."""
        waiting = self._final_waiting
        if waiting is not None and waiting[0] == token:
            with contextlib.suppress(asyncio.InvalidStateError):
                waiting[1].set_result((code, message))
            return
        self.on_answer(token, code, message)


class _Together:
    """`Outbox.together()`: holds the outbox's sends from `with` to its end."""

    __slots__ = ("_outbox",)

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def __enter__(self) -> None:
        self._outbox._hold_sends()

    def __exit__(self, *exc: object) -> None:
        self._outbox._release_sends()
