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
