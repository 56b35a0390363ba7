"""The shadow service's refusals reach callers as a ShadowError with the service's numeric code,
from the real local stack through awsiotsdk: callers branch on `err.code`, never on the text."""

from __future__ import annotations

import asyncio

import pytest

from pyiot.errors import PyiotError
from pyiot.local import LocalStack
from pyiot.local.discovery import StackError, check_shadow_service
from pyiot.runtime.shadow_client import BrokerAddress, ShadowConnection, ShadowError


def test_refusals_carry_the_numeric_code(stack: LocalStack, thing_name):
    thing = thing_name()

    async def scenario() -> tuple[ShadowError, ShadowError, object, bool]:
        connection = ShadowConnection(BrokerAddress(stack.host, stack.port))
        await connection.connect()
        try:
            errors = []
            too_deep: dict = {"v": 1}
            for _ in range(8):
                too_deep = {"n": too_deep}
            for desired in (too_deep, {"big": "x" * 9000}):
                try:
                    await connection.update(thing, desired=desired)
                except ShadowError as err:
                    errors.append(err)
            # Absent shadows are answers (404), not failures.
            absent = await connection.get(thing)
            deleted = await connection.delete(thing)
            return errors[0], errors[1], absent, deleted
        finally:
            await connection.close()

    deep, big, absent, deleted = asyncio.run(scenario())
    assert (deep.code, big.code) == (400, 413)
    assert isinstance(deep.code, int)
    assert isinstance(deep, PyiotError) and isinstance(deep, RuntimeError)
    assert deep.what == "shadow request failed"
    assert absent is None and deleted is False


def test_a_request_the_broker_refuses_is_named_by_its_client_error(mosquitto_path, tmp_path):
    """The broker's ACL refuses the request (MQTT 5 PUBACK): the error names awscrt's
    PUBLISH_FAILURE in `client_error`, and the stack check turns it into a one-line StackError."""
    with LocalStack(data_dir=tmp_path / "data", users={"lamp": "pw-lamp"}) as stack:
        broker = BrokerAddress(stack.host, stack.port, "lamp", "pw-lamp")

        async def scenario() -> tuple[ShadowError, StackError]:
            connection = ShadowConnection(broker)
            await connection.connect()
            try:
                try:
                    await connection.get("door", timeout=30)
                except ShadowError as err:
                    refused = err
                with pytest.raises(StackError) as raised:
                    await check_shadow_service(connection, broker, "door")
                # Its own thing answers (no shadow yet: None, not an error).
                assert await connection.get("lamp") is None
                return refused, raised.value
            finally:
                await connection.close()

        refused, stack_error = asyncio.run(scenario())
    assert refused.code is None
    assert refused.client_error == "AWS_ERROR_MQTT_REQUEST_RESPONSE_PUBLISH_FAILURE"
    assert "refuses shadow requests for door" in str(stack_error)


def test_a_report_the_broker_refuses_is_handed_to_the_loop(mosquitto_path, tmp_path):
    """A report is a plain QoS 1 publish, settled by its PUBACK on awscrt's thread. One the
    broker refuses (its ACL: `lamp` may not report for `door`) reaches `on_failure` in the
    loop, naming the reason; one the broker takes calls nothing (its answer comes on
    `update/accepted`)."""
    with LocalStack(data_dir=tmp_path / "data", users={"lamp": "pw-lamp"}) as stack:
        broker = BrokerAddress(stack.host, stack.port, "lamp", "pw-lamp")

        async def scenario() -> tuple[list, object, object]:
            loop = asyncio.get_running_loop()
            connection = ShadowConnection(broker)
            await connection.connect()
            failures: list = []
            failed = loop.create_future()

            def on_failure(future, error) -> None:
                assert asyncio.get_running_loop() is loop  # in the loop, not awscrt's thread
                failures.append((future, error))
                failed.set_result(None)

            try:
                taken = connection.publish_report(
                    "lamp", "t-1", {"on": True}, on_failure=on_failure
                )
                refused = connection.publish_report(
                    "door", "t-2", {"on": True}, on_failure=on_failure
                )
                await asyncio.wait_for(failed, 30)
                await asyncio.wait_for(asyncio.wrap_future(taken), 30)
                return failures, refused, taken
            finally:
                await connection.close()

        failures, refused, taken = asyncio.run(scenario())
    assert [future for future, _ in failures] == [refused]
    assert "NOT_AUTHORIZED" in str(failures[0][1])
    assert taken.exception() is None  # type: ignore[attr-defined]
