"""Hostile input to the local shadow service gets AWS IoT's documented answers, never a 500,
a traceback, `Infinity` in a document, or silence; and one thing flooding it is throttled."""

from __future__ import annotations

import logging
import time

import pytest

from pyiot.local import LocalStack
from pyiot.local.shadow_service import REQUESTS_PER_SECOND_PER_THING, RequestBudget
from tests.local.conftest import MqttProbe

pytestmark = pytest.mark.timeout(60)


def topic(thing: str, op: str) -> str:
    return f"$aws/things/{thing}/shadow/{op}"


def update(probe: MqttProbe, thing: str, raw: bytes, reply: str) -> dict:
    return probe.request(topic(thing, "update"), raw, reply=reply)


def still_serves(probe: MqttProbe, thing: str) -> None:
    """A good update and a get after the bad one: the service is alive and the shadow sane."""
    accepted = update(probe, thing, b'{"state":{"reported":{"ok":1}}}', "accepted")
    got = probe.request(topic(thing, "get"))
    assert got["state"]["reported"] == {"ok": 1}
    assert got["version"] == accepted["version"]


@pytest.fixture
def service_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="pyiot.local")
    return caplog


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.5e999"])
def test_a_number_out_of_range_is_400_not_infinity(probe, thing, number, service_log) -> None:
    raw = b'{"state":{"reported":{"x":%s}},"clientToken":"inf"}' % number.encode()
    rejected = update(probe, thing, raw, "rejected")
    assert (rejected["code"], rejected["message"]) == (400, "Invalid JSON")
    assert rejected["clientToken"] == "inf"
    probe.request(topic(thing, "get"), reply="rejected")  # nothing was stored
    still_serves(probe, thing)
    assert not service_log.records


def test_a_lone_surrogate_is_400_without_a_traceback(probe, thing, service_log) -> None:
    for raw in (
        b'{"state":{"desired":{"label":"\\ud800"}},"clientToken":"sur"}',
        b'{"state":{"desired":{"\\udfff":1}},"clientToken":"sur"}',
    ):
        rejected = update(probe, thing, raw, "rejected")
        assert (rejected["code"], rejected["message"]) == (400, "Invalid JSON")
        assert rejected["clientToken"] == "sur"
    # A proper pair of escapes is one character, and fine.
    update(probe, thing, b'{"state":{"desired":{"label":"\\ud83d\\ude00"}}}', "accepted")
    assert probe.request(topic(thing, "get"))["state"]["desired"] == {"label": "\U0001f600"}
    assert not service_log.records


@pytest.mark.parametrize("depth", [60_000, 900])
def test_a_deep_array_is_400_and_the_service_goes_on(probe, thing, depth, service_log) -> None:
    raw = b'{"state":{"reported":{"x":' + b"[" * depth + b"]" * depth + b"}}}"
    rejected = update(probe, thing, raw, "rejected")
    assert rejected["code"] == 400
    assert rejected["message"] == "JSON contains too many levels of nesting; maximum is 6"
    # The same nesting in a get's body (which is otherwise ignored) is no crash either.
    body = b"[" * depth + b"]" * depth
    assert probe.request(topic(thing, "get"), body, reply="rejected")["code"] == 404
    still_serves(probe, thing)
    assert not service_log.records


def test_fifty_back_to_back_updates_to_one_thing_are_throttled(
    stack: LocalStack, make_probe, thing
) -> None:
    service = stack.shadow_service
    assert service is not None
    # The budget's clock stands still during the flood, so no request is refilled however
    # slowly a loaded machine serves them: exactly a second's worth go in.
    service.budget.clock = lambda: 1e9
    try:
        throttle_fifty(stack, make_probe, thing)
    finally:
        service.budget.clock = time.monotonic


def throttle_fifty(stack: LocalStack, make_probe, thing: str) -> None:
    probe = make_probe(stack.host, stack.port)
    other = f"{thing}-other"
    update_topic = topic(thing, "update")
    probe.subscribe(f"{update_topic}/accepted", f"{update_topic}/rejected")
    for n in range(50):  # published without waiting for the replies, as a flood comes
        probe.client.publish(
            update_topic, b'{"state":{"reported":{"n":%d}},"clientToken":"c%d"}' % (n, n), qos=1
        )
    replies = [
        probe.expect_any((f"{update_topic}/accepted", f"{update_topic}/rejected"))
        for _ in range(50)
    ]
    throttled = [body for got, body in replies if got.endswith("rejected")]
    accepted = [body for got, body in replies if got.endswith("accepted")]
    assert throttled, "50 back-to-back updates were all accepted"
    assert {(body["code"], body["message"]) for body in throttled} == {(429, "Too Many Requests")}
    assert all(body["clientToken"].startswith("c") for body in throttled)
    # A second's worth goes through; the throttle is per thing, so another thing is served.
    assert len(accepted) == REQUESTS_PER_SECOND_PER_THING
    probe.request(topic(other, "update"), {"state": {"reported": {"n": 1}}})
    # Only accepted updates went in (a get now would be throttled too: ask the store).
    assert stack.store is not None
    stored = stack.store.load(thing)
    assert stored is not None and stored.version == len(accepted)


def test_the_throttle_is_on_by_default(stack: LocalStack) -> None:
    assert stack.shadow_service is not None and stack.shadow_service.aws_limits


def test_without_the_throttle_fifty_updates_go_in(unthrottled: LocalStack, probe, thing) -> None:
    for n in range(50):
        probe.request(topic(thing, "update"), {"state": {"reported": {"n": n}}})
    assert probe.request(topic(thing, "get"))["version"] == 50


def test_the_budget_refills_at_the_rate_and_is_per_thing() -> None:
    now = [0.0]
    budget = RequestBudget(20, clock=lambda: now[0])
    assert all(budget.take("a") for _ in range(20))
    assert not budget.take("a")
    assert budget.take("b")  # another thing has its own
    now[0] += 0.05  # a twentieth of a second: one request more
    assert budget.take("a")
    assert not budget.take("a")
    now[0] += 10  # idle: back to a full second's worth, no more
    assert sum(budget.take("a") for _ in range(30)) == 20
