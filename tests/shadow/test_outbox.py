"""The report outbox against the real local stack: direct QoS 1 updates with a clientToken,
one in flight per thing, a confirmed command in one update, a throttled (429) update sent
again with the newest values."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pyiot.local import LocalStack
from tests.local.conftest import MqttProbe
from tests.shadow.conftest import Rig, amp_program, desired, reported, status
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


class Exchanges:
    """Everything on a thing's `update` topic and its answers, in the broker's order."""

    def __init__(self, stack: LocalStack, thing: str):
        self.probe = MqttProbe(stack.host, stack.port)
        base = f"$aws/things/{thing}/shadow/update"
        self.base = base
        self.probe.subscribe(base, f"{base}/accepted", f"{base}/rejected")

    def messages(self) -> list[tuple[str, Any]]:
        with self.probe._cond:
            return list(self.probe._messages)

    def close(self) -> None:
        self.probe.close()


def test_one_report_in_flight_each_answered_by_its_token(stack, thing_name):
    """pyiot's updates carry a clientToken, and the next one is published only after the
    service answered the previous one (accepted or rejected, echoing its token)."""
    name = thing_name()
    exchanges = Exchanges(stack, name)

    async def scenario() -> None:
        rig = Rig(stack, amp_program(name))
        try:
            await rig.start()
            app = rig.apps[name]
            await app.until(lambda s: reported(s).get("input") == 1)
            sim = rig.sims[f"{name}.amp1"]
            for volume in range(1, 31):  # a knob turned fast: more changes than round trips
                sim.change("amp1", "volume", volume)
                await asyncio.sleep(0)
            await app.until(lambda s: reported(s).get("volume") == 30)
        finally:
            await rig.close()

    try:
        asyncio.run(scenario())
        messages = exchanges.messages()
    finally:
        exchanges.close()
    in_flight: str | None = None
    sent = 0
    for topic, body in messages:
        token = body.get("clientToken")
        if topic == exchanges.base:
            assert token, body
            assert in_flight is None, f"{token} published while {in_flight} was unanswered"
            in_flight = token
            sent += 1
        elif token == in_flight:
            in_flight = None
    assert sent >= 2


def test_a_confirmed_command_is_one_update(stack, thing_name):
    """The device's reply to a set goes out as one update: the value reported and the
    desired key cleared together, nothing after it."""
    name = thing_name()
    exchanges = Exchanges(stack, name)

    async def scenario() -> list[dict[str, Any]]:
        rig = Rig(stack, amp_program(name))
        try:
            await rig.start()
            app = rig.apps[name]
            await app.until(lambda s: reported(s).get("input") == 1)
            await eventually(lambda: not rig.gateway.things[name].outbox.pending, what="quiet")
            before = len(exchanges.messages())
            await app.set(volume=21)
            await app.until(lambda s: reported(s).get("volume") == 21 and not desired(s))
            thing = rig.gateway.things[name]
            await eventually(lambda: thing.applied == 1, what="the set applied")
            await eventually(lambda: thing.outbox._inflight is None, what="answered")
            later = exchanges.messages()[before:]
            return [
                body["state"]
                for topic, body in later
                if topic == exchanges.base and "reported" in body["state"]
            ]
        finally:
            await rig.close()

    try:
        updates = asyncio.run(scenario())
    finally:
        exchanges.close()
    # Other values may be reported meanwhile (a slow first refresh on a loaded machine); the
    # volume goes out once, with its desired key cleared in the same update.
    about_volume = [
        state
        for state in updates
        if "volume" in state.get("reported", {}) or "volume" in (state.get("desired") or {})
    ]
    assert len(about_volume) == 1, updates
    assert about_volume[0]["reported"]["volume"] == 21
    assert about_volume[0]["desired"] == {"volume": None}


def test_a_throttled_report_is_sent_again_with_the_newest_values(stack, thing_name):
    """429 (AWS's 20 requests a second per thing): the report is not lost; it goes again
    after a pause, carrying the values that changed meanwhile (newest wins)."""
    name = thing_name()
    exchanges = Exchanges(stack, name)
    service = stack.shadow_service
    assert service is not None
    refusals = {"left": 0}
    take = service.budget.take

    def throttled(thing: str) -> bool:
        if thing == name and refusals["left"] > 0:
            refusals["left"] -= 1
            return False
        return take(thing)

    service.budget.take = throttled  # type: ignore[method-assign]

    async def scenario() -> dict[str, Any]:
        rig = Rig(stack, amp_program(name))
        try:
            await rig.start()
            app = rig.apps[name]
            await app.until(lambda s: reported(s).get("input") == 1)
            thing = rig.gateway.things[name]
            await eventually(lambda: not thing.outbox.pending, what="quiet")
            refusals["left"] = 2
            sim = rig.sims[f"{name}.amp1"]
            sim.change("amp1", "volume", 10)
            await eventually(lambda: refusals["left"] == 0, what="two updates refused")
            sim.change("amp1", "volume", 12)
            sim.change("amp1", "power", True)
            return await app.until(
                lambda s: reported(s).get("volume") == 12 and reported(s).get("power") is True
            )
        finally:
            await rig.close()

    try:
        final = asyncio.run(scenario())
        messages = exchanges.messages()
    finally:
        del service.budget.take
        exchanges.close()
    assert status(final)["components"]["amp1"]["online"] is True
    refused = [body for topic, body in messages if topic.endswith("/rejected")]
    assert [body["code"] for body in refused] == [429, 429]
    accepted_tokens = {body.get("clientToken") for t, body in messages if t.endswith("/accepted")}
    refused_tokens = {body["clientToken"] for body in refused}
    # Every volume change reached the shadow in an accepted update; the refused ones were
    # sent again, none dropped.
    accepted_volumes = [
        body["state"]["reported"].get("volume")
        for topic, body in messages
        if topic == exchanges.base
        and body.get("clientToken") in accepted_tokens
        and "volume" in body["state"].get("reported", {})
    ]
    assert accepted_volumes[-1] == 12
    assert refused_tokens.isdisjoint(accepted_tokens)


class CountingBudget:
    """A publish budget that never grants at once: every publish waits in `acquire`."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def try_acquire(self, nbytes: int) -> bool:
        return False

    async def acquire(self, nbytes: int) -> None:
        await asyncio.sleep(0)
        self.sizes.append(nbytes)


def test_every_report_waits_for_the_budget(stack, thing_name):
    """With a publish budget (issue 16's per-connection pacing), each report goes out only
    once the budget grants it, sized; the values still all arrive."""
    name = thing_name()

    async def scenario() -> tuple[CountingBudget, int]:
        rig = Rig(stack, amp_program(name))
        try:
            await rig.start()
            app = rig.apps[name]
            await app.until(lambda s: reported(s).get("input") == 1)
            thing = rig.gateway.things[name]
            await eventually(lambda: not thing.outbox.pending, what="quiet")
            budget = CountingBudget()
            thing.outbox.budget = budget
            published = thing.outbox.published
            rig.sims[f"{name}.amp1"].change("amp1", "volume", 17)
            await app.set(power=True)
            await app.until(
                lambda s: reported(s).get("volume") == 17
                and reported(s).get("power") is True
                and not desired(s)
            )
            return budget, thing.outbox.published - published
        finally:
            await rig.close()

    budget, published = asyncio.run(scenario())
    assert published >= 1
    assert len(budget.sizes) == published
    assert all(size > 20 for size in budget.sizes)
