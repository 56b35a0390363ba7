"""`pyiot run` of a file of 13 things: two connections, numbered client ids, every thing served.

The broker's own log says which client ids connected; the application is another client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyiot.local import LocalStack
from tests.e2e.conftest import RELAY, CliProcess, ShadowApp, desired, reported

pytestmark = pytest.mark.timeout(120)

THINGS = [f"rack{i:02d}" for i in range(13)]


@pytest.fixture
def stack(mosquitto_path: str, tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(port=None, data_dir=tmp_path / "data") as running:
        yield running


def rack_file(directory: Path) -> Path:
    """devices/relay.iot with twelve things of one relay each."""
    text = RELAY.read_text()
    device = text[: text.index("thing relayOne")]
    body = "".join(
        f'thing {name} {{\n    component relay1: Relay on serial "/dev/ttyUSB0"\n}}\n'
        for name in THINGS
    )
    path = directory / "rack.iot"
    path.write_text(device + body)
    return path


def test_pyiot_run_of_13_things_opens_two_numbered_connections(
    stack: LocalStack, tmp_path: Path
) -> None:
    apps = [ShadowApp(stack.url, THINGS[0]), ShadowApp(stack.url, THINGS[-1])]
    run = CliProcess("run", str(rack_file(tmp_path)), "--simulate", "--broker", stack.url,
                     "--client-id", "rack")  # fmt: skip
    try:
        run.wait_for(r"^13 things over 2 connections$")
        run.wait_for(r"^ready")
        # The first thing is on the first connection, the last on the second: both serve.
        for app in apps:
            app.set_desired(relayState=True)
            app.wait_until(lambda d: reported(d).get("relayState") is True and not desired(d))
    finally:
        code = run.stop()
        for app in apps:
            app.close()
    assert code == 0
    assert stack.mosquitto is not None
    log = stack.mosquitto.log_path.read_text()
    ids = set(re.findall(r"New client connected from \S+ as (rack\S*) ", log))
    assert ids == {"rack-1", "rack-2"}
