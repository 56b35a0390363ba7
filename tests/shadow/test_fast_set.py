"""A desired value for an idle component is written in the delta's own loop iteration (the
engine's `submit_set`); a busy component still takes its commands in order.

Against the real local stack, a simulated amplifier on TCP and an awsiotsdk application.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest

from tests.shadow.conftest import Rig, amp_program, desired, reported, status
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


def unread(sim: Any) -> bytes:
    """What the simulated device's socket holds that the simulator has not read yet (a peek
    at the kernel's buffer: the bytes the engine has written)."""
    held = b""
    for writer in sim._writers:
        dup = socket.socket(fileno=os.dup(writer.get_extra_info("socket").fileno()))
        try:
            held += dup.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        finally:
            dup.close()
    return held


def heard(sim: Any) -> list[str]:
    """Record the lines the simulated device answers, in order (it still answers them)."""
    lines: list[str] = []
    answer = sim.answer

    def recording(line: str) -> list[str]:
        lines.append(line)
        return answer(line)

    sim.answer = recording
    return lines


async def online(rig: Rig, name: str) -> Any:
    """The thing's amplifier engine, once online and idle (its first poll done)."""
    app = rig.apps[name]
    await app.until(lambda s: status(s).get("components", {}).get("amp1", {}).get("online"))
    await app.until(lambda s: "volume" in reported(s))
    assert rig.gateway is not None
    engine = rig.gateway.engines[f"{name}.amp1"]
    await eventually(lambda: engine.state == "idle" and not engine._polls)
    return engine


def test_set_to_an_idle_component_is_written_before_anything_scheduled_after_the_delta(
    stack, thing_name
):
    name = thing_name()

    async def scenario() -> None:
        rig = Rig(stack, amp_program(name))
        try:
            await rig.start()
            engine = await online(rig, name)
            sim = rig.sims[f"{name}.amp1"]
            thing = rig.gateway.things[name]  # type: ignore[union-attr]
            seen: dict[str, Any] = {}
            on_delta = thing.reconciler.on_delta

            def delta_then_look(delta: dict[str, Any]) -> None:
                seen["idle"] = engine.state == "idle"
                on_delta(delta)
                # Whatever the loop runs next already finds the command on the device's side.
                asyncio.get_running_loop().call_soon(lambda: seen.setdefault("wire", unread(sim)))

            thing.reconciler.on_delta = delta_then_look
            await rig.apps[name].set(volume=17)
            await rig.apps[name].until(
                lambda s: reported(s).get("volume") == 17 and "volume" not in desired(s)
            )
            assert seen["idle"] is True
            assert seen["wire"] == b"VOL17\n"
            assert sim.sims["amp1"].values["volume"] == 17
        finally:
            await rig.close()

    asyncio.run(scenario())


def test_a_busy_component_takes_its_commands_in_order(stack, thing_name):
    """The first key of a delta goes out at once; the others, the engine being busy with it,
    queue behind it in the delta's order, and a second delta's keys behind those."""
    name = thing_name()

    async def scenario() -> None:
        rig = Rig(stack, amp_program(name))
        try:
            await rig.start()
            await online(rig, name)
            sim = rig.sims[f"{name}.amp1"]
            lines = heard(sim)
            app = rig.apps[name]
            await app.set(volume=5, power=True, source="hdmi2")
            await app.set(volume=9)
            await app.until(
                lambda s: (
                    reported(s).get("volume") == 9
                    and reported(s).get("power") is True
                    and reported(s).get("source") == "hdmi2"
                    and not desired(s)
                )
            )
            sets = [line for line in lines if not line.endswith("?")]
            # The second update may reach pyiot before or after the first one's commands
            # are answered; either way nothing overtakes and 9 is the last volume sent.
            assert sets[:3] == ["VOL5", "PWRON", "SRCA0"]
            assert sets[3:] == ["VOL9"]
        finally:
            await rig.close()

    asyncio.run(scenario())
