"""The local shadow service over a real mosquitto, driven by a plain paho client."""

from __future__ import annotations

import socket
import time

import pytest

from pyiot.local import LocalStack
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(30)


def topic(thing: str, op: str, name: str | None = None) -> str:
    return f"$aws/things/{thing}/shadow" + (f"/name/{name}" if name else "") + f"/{op}"


def test_update_publishes_accepted_then_delta_and_documents(probe, thing) -> None:
    update = topic(thing, "update")
    probe.subscribe(
        *(f"{update}/{suffix}" for suffix in ("accepted", "rejected", "delta", "documents"))
    )
    probe.publish(
        update,
        {"state": {"desired": {"color": "RED", "lights": {"on": True}}}, "clientToken": "tok-1"},
    )

    accepted = probe.expect(f"{update}/accepted")
    assert accepted["state"] == {"desired": {"color": "RED", "lights": {"on": True}}}
    assert accepted["clientToken"] == "tok-1"
    assert accepted["version"] == 1
    ts = accepted["timestamp"]
    assert abs(ts - time.time()) < 5
    assert accepted["metadata"] == {
        "desired": {"color": {"timestamp": ts}, "lights": {"on": {"timestamp": ts}}}
    }

    delta = probe.expect(f"{update}/delta")
    assert delta["state"] == {"color": "RED", "lights": {"on": True}}
    assert delta["version"] == 1

    documents = probe.expect(f"{update}/documents")
    assert documents["current"]["state"] == {"desired": {"color": "RED", "lights": {"on": True}}}
    assert documents["current"]["version"] == 1
    assert documents["clientToken"] == "tok-1"
    # accepted first, then delta: a client waiting on its accepted sees the delta after it.
    order = [t for t in probe.received if t.startswith(update)]
    assert order == [f"{update}/accepted", f"{update}/delta", f"{update}/documents"]


def test_get_returns_state_delta_metadata_and_echoes_token(probe, thing) -> None:
    update = topic(thing, "update")
    probe.request(update, {"state": {"desired": {"color": "RED", "engine": "ON"}}})
    probe.request(update, {"state": {"reported": {"color": "GREEN", "engine": "ON"}}})

    got = probe.request(topic(thing, "get"), {"clientToken": "get-1"})
    assert got["state"] == {
        "desired": {"color": "RED", "engine": "ON"},
        "reported": {"color": "GREEN", "engine": "ON"},
        "delta": {"color": "RED"},
    }
    assert set(got["metadata"]) == {"desired", "reported"}
    assert got["metadata"]["reported"]["engine"]["timestamp"] > 0
    assert got["version"] == 2
    assert got["clientToken"] == "get-1"


def test_report_matching_desired_clears_the_delta_without_a_delta_message(probe, thing) -> None:
    update = topic(thing, "update")
    probe.subscribe(f"{update}/delta")
    probe.request(update, {"state": {"desired": {"power": "on"}}})
    probe.expect(f"{update}/delta")
    probe.request(update, {"state": {"reported": {"power": "on"}}})
    probe.expect_nothing(f"{update}/delta")
    assert "delta" not in probe.request(topic(thing, "get"))["state"]


def test_null_deletes_keys(probe, thing) -> None:
    update = topic(thing, "update")
    probe.request(update, {"state": {"desired": {"a": 1, "b": {"c": 2}}, "reported": {"a": 0}}})
    accepted = probe.request(update, {"state": {"desired": None, "reported": {"a": None, "z": 9}}})
    assert accepted["state"] == {"desired": None, "reported": {"a": None, "z": 9}}
    assert probe.request(topic(thing, "get"))["state"] == {"reported": {"z": 9}}


def test_delete_then_get_is_404_and_version_continues(probe, thing) -> None:
    update = topic(thing, "update")
    for n in range(3):
        probe.request(update, {"state": {"reported": {"n": n}}})

    deleted = probe.request(topic(thing, "delete"), {"clientToken": "del-1"})
    assert deleted["version"] == 3
    assert deleted["clientToken"] == "del-1"
    assert deleted["timestamp"] > 0

    missing = probe.request(topic(thing, "get"), {"clientToken": "get-2"}, reply="rejected")
    assert missing["code"] == 404
    assert missing["message"] == f"No shadow exists with name: '{thing}'"
    assert missing["clientToken"] == "get-2"

    again = probe.request(topic(thing, "delete"), {"clientToken": "del-2"}, reply="rejected")
    assert (again["code"], again["clientToken"]) == (404, "del-2")

    recreated = probe.request(update, {"state": {"reported": {"n": 0}}})
    assert recreated["version"] == 4


def test_rejections_echo_the_client_token(probe, thing) -> None:
    update = topic(thing, "update")
    missing_state = probe.request(update, {"clientToken": "bad-1"}, reply="rejected")
    assert missing_state == {
        "code": 400,
        "message": "Missing required node: state",
        "timestamp": missing_state["timestamp"],
        "clientToken": "bad-1",
    }
    not_object = probe.request(
        update, {"state": {"desired": 5}, "clientToken": "bad-2"}, reply="rejected"
    )
    assert (not_object["code"], not_object["message"], not_object["clientToken"]) == (
        400,
        "Desired node must be an object",
        "bad-2",
    )
    garbage = probe.request(update, b"{nope", reply="rejected")
    assert (garbage["code"], garbage["message"]) == (400, "Invalid JSON")
    # Nothing was stored by rejected requests.
    assert probe.request(topic(thing, "get"), reply="rejected")["code"] == 404


def test_version_conflict_is_409(probe, thing) -> None:
    update = topic(thing, "update")
    probe.request(update, {"state": {"desired": {"colors": ["RED", "GREEN", "BLUE"]}}})
    conflict = probe.request(
        update,
        {"state": {"desired": {"colors": ["BLUE"]}}, "version": 9, "clientToken": "v9"},
        reply="rejected",
    )
    assert (conflict["code"], conflict["message"], conflict["clientToken"]) == (
        409,
        "Version conflict",
        "v9",
    )
    ok = probe.request(update, {"state": {"desired": {"colors": ["BLUE"]}}, "version": 1})
    assert ok["version"] == 2


def test_oversize_state_is_413(probe, thing) -> None:
    rejected = probe.request(
        topic(thing, "update"),
        {"state": {"reported": {"blob": "x" * 9000}}, "clientToken": "big"},
        reply="rejected",
    )
    assert (rejected["code"], rejected["clientToken"]) == (413, "big")


def test_named_shadows_are_separate_from_the_classic_one(probe, thing) -> None:
    named_update = topic(thing, "update", "config")
    probe.subscribe(f"{named_update}/delta")
    accepted = probe.request(
        named_update, {"state": {"desired": {"rate": 5}}, "clientToken": "n-1"}
    )
    assert (accepted["version"], accepted["clientToken"]) == (1, "n-1")
    assert probe.expect(f"{named_update}/delta")["state"] == {"rate": 5}

    got = probe.request(topic(thing, "get", "config"))
    assert got["state"]["desired"] == {"rate": 5}
    classic = probe.request(topic(thing, "get"), reply="rejected")
    assert classic["code"] == 404
    other = probe.request(topic(thing, "get", "other"), {"clientToken": "n-2"}, reply="rejected")
    assert other["message"] == "No shadow exists with name: 'other'"
    assert other["clientToken"] == "n-2"

    assert probe.request(topic(thing, "delete", "config"))["version"] == 1
    assert probe.request(topic(thing, "get", "config"), reply="rejected")["code"] == 404


def test_invalid_thing_name_is_400(probe) -> None:
    rejected = probe.request(topic("bad%name", "get"), {"clientToken": "n"}, reply="rejected")
    assert (rejected["code"], rejected["message"], rejected["clientToken"]) == (
        400,
        "Invalid thing name",
        "n",
    )


def test_service_socket_has_nagle_off(stack: LocalStack) -> None:
    # Nagle on any hop would make a QoS 1 request/reply take ~40 ms instead of 1-2 ms; the
    # option is checked here, the round trip itself is timed in bench/latency.py.
    service = stack.shadow_service
    assert service is not None
    sock = service._client.socket()
    assert sock is not None
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_requests_are_answered_in_order_across_the_quick_and_the_queued_path(
    unthrottled, probe, thing
) -> None:
    """The service answers a request on its MQTT thread when nothing waits, and queues it for
    its worker otherwise. Requests that arrive while earlier ones are still queued (here: the
    test held the store, then let go) must not overtake them: every update is accepted in the
    order it was sent, each version one more than the last."""
    stack = unthrottled
    service = stack.shadow_service
    assert service is not None and stack.store is not None
    update = topic(thing, "update")
    probe.subscribe(f"{update}/accepted", f"{update}/rejected")
    held = [f"held-{n}" for n in range(40)]
    after = [f"after-{n}" for n in range(6)]
    with stack.store._lock:  # the first update waits for the store; the rest queue behind it
        for n, token in enumerate(held):
            probe.publish(update, {"state": {"reported": {"n": n}}, "clientToken": token})
        wait_until(lambda: service.in_flight(thing) == len(held), what="all queued")
    for n, token in enumerate(after, len(held)):
        probe.publish(update, {"state": {"reported": {"n": n}}, "clientToken": token})
    answers = [probe.expect(f"{update}/accepted") for _ in held + after]
    assert [a["clientToken"] for a in answers] == held + after
    assert [a["version"] for a in answers] == list(range(1, len(held) + len(after) + 1))
    final = probe.request(topic(thing, "get"), {})
    assert final["state"]["reported"] == {"n": len(held) + len(after) - 1}
