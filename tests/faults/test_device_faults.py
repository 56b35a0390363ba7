"""Devices that misbehave on the wire: silent, late, and answering garbage.

Garbage is 10,000 random frames (1,000 by default), wrong-baud noise (the bits of real replies
sampled at another baud rate, as a UART set wrong receives them), replies cut into pieces or
cut short, and overlong lines. Each is counted and skipped, and the component keeps working:
every command is still confirmed with the right value and the device ends in the state asked.
The engine runs on a real TCP socket against an in-process device whose faults are scripted.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable

import pytest

from pyiot.compiler import Program
from pyiot.lang import load
from pyiot.runtime.component import ComponentEngine, DeviceError, EngineConfig
from pyiot.runtime.framing import MAX_LINE_BYTES
from pyiot.runtime.transport import open_link
from pyiot.sim import DeviceSimulator, PortSimulator
from tests.faults.conftest import (
    TIMEOUT,
    GatewayRun,
    figure,
    relay_program,
    size,
)
from tests.shadow.conftest import desired, reported, status
from tests.waiting import PATIENCE, eventually

pytestmark = TIMEOUT

GARBAGE_FRAMES = size(10_000, 2_000)
NOISE_BURSTS = size(300, 15)
OVERLONG_LINES = size(200, 20)

# The relay with short timing: a silent device fails a request in 3 x 0.2 s.
QUICK = r"""
device Quick "relay with short timing" {
    transport serial { baud 9600 }
    framing line "\n"
    timeout 200ms
    retries 2
    error /^ERR$/
    property relayState: bool {
        query "RELAY?"
        reply /^RELAY(?P<value>ON|OFF)$/
        set   "RELAY{value}"
        map   { ON = true, OFF = false }
    }
}
"""
TIMEOUT_S = 0.2
TRIES = 3
SETS = ("RELAYON", "RELAYOFF")


@pytest.fixture(scope="module")
def quick() -> Program:
    return Program.from_model(load(QUICK, "quick.iot"))


@pytest.fixture(scope="module")
def patient() -> Program:
    """The same relay with a timeout no loaded machine reaches while a reply is on its way:
    for the tests that count resends a fault (not a slow machine) would cause."""
    return Program.from_model(load(QUICK.replace("timeout 200ms", "timeout 5s"), "patient.iot"))


class ScriptedDevice:
    """A TCP device answering as its simulator does, with faults on its side of the wire.

    `noise(line)` gives bytes sent before the reply to `line`; `late` delays replies; `mute`
    makes it read and never answer; `chunked` sends each reply a few bytes at a time.
    """

    def __init__(self, program: Program, device: str = "Quick"):
        self.sim = DeviceSimulator("quick", program.model.devices[device])
        self.port = PortSimulator([self.sim])
        self.received: list[str] = []
        self.noise: Callable[[str], bytes] = lambda line: b""
        self.late = 0.0
        self.mute = False
        self.chunked = False
        self.sent_bytes = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        try:
            while data := await reader.read(4096):
                *lines, buffer = (buffer + data).split(b"\n")
                for raw in lines:
                    line = raw.decode()
                    self.received.append(line)
                    if not self.mute:
                        task = asyncio.create_task(self._answer(writer, line))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, line: str) -> None:
        noise = self.noise(line)
        reply = self.port.respond(line)
        if self.late:
            await asyncio.sleep(self.late)
        if writer.is_closing():
            return
        writer.write(noise)
        if self.chunked:
            for start in range(0, len(reply), 3):
                writer.write(reply[start : start + 3])
                await writer.drain()
                await asyncio.sleep(0.002)
        else:
            writer.write(reply)
        self.sent_bytes += len(noise) + len(reply)
        await writer.drain()

    def sets(self) -> list[str]:
        return [line for line in self.received if line in SETS]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def running_engine(program: Program, device: ScriptedDevice) -> ComponentEngine:
    address = await device.start()
    engine = ComponentEngine(
        EngineConfig("quick", program.model.devices["Quick"], program.machines["Quick"]),
        open_link("tcp", address),
    )
    await engine.start()
    await eventually(lambda: "relayState" in engine.values, what="first poll answered")
    return engine


async def stop(engine: ComponentEngine, device: ScriptedDevice) -> None:
    await asyncio.wait_for(engine.stop(), PATIENCE)
    await device.close()


async def toggle(engine: ComponentEngine, device: ScriptedDevice, rounds: int) -> list[int]:
    """Switch the relay `rounds` times; each is confirmed with the right value. Returns how
    many times the device received each set command."""
    tries = []
    for n in range(rounds):
        wish = n % 2 == 0
        before = len(device.sets())
        assert await engine.set("relayState", wish) is wish, f"round {n}"
        assert device.sim.values["relayState"] is wish
        tries.append(len(device.sets()) - before)
    return tries


# ------------------------------------------------------------------------------- garbage
def garbage_line(rng: random.Random) -> bytes:
    """Random bytes that form no line the relay could mean (no terminator inside)."""
    while True:
        line = bytes(rng.randrange(256) for _ in range(rng.randint(1, 120))).replace(b"\n", b"")
        text = line.decode("utf-8", errors="replace")
        if line and not re.search(r"RELAY|ERR", text):
            return line + b"\n"


def test_ten_thousand_garbage_frames_are_counted_and_skipped(patient) -> None:
    rng = random.Random(7)
    per_reply = 50
    rounds = GARBAGE_FRAMES // per_reply

    async def scenario() -> tuple[ComponentEngine, list[int]]:
        device = ScriptedDevice(patient)
        engine = await running_engine(patient, device)
        sent = 0

        def noise(line: str) -> bytes:
            nonlocal sent
            if line not in SETS:
                return b""
            sent += per_reply
            return b"".join(garbage_line(rng) for _ in range(per_reply))

        device.noise = noise
        try:
            tries = await toggle(engine, device, rounds)
            assert sent == GARBAGE_FRAMES
            await eventually(lambda: engine.state == "idle")
            return engine, tries
        finally:
            await stop(engine, device)

    engine, tries = asyncio.run(scenario())
    figure(
        f"garbage: {GARBAGE_FRAMES} random frames before {len(tries)} replies: "
        f"{engine.status.unrecognised_lines} counted as unrecognised, every set confirmed, "
        f"{sum(tries) - len(tries)} resends"
    )
    assert engine.status.unrecognised_lines == GARBAGE_FRAMES
    assert tries == [1] * len(tries), "garbage before a reply must not cost a resend"
    assert engine.status.online is True


def misread(data: bytes, sent_baud: int, read_baud: int) -> bytes:
    """What a UART at `read_baud` makes of `data` sent 8N1 at `sent_baud`.

    The line idles high; the receiver waits for a falling edge (start bit), samples the 8
    data bits (LSB first) in the middle of each of its own bit times, and wants the stop bit
    high (else a framing error: the byte is lost and it waits for the line to go idle).
    """
    bits: list[int] = []
    for byte in data:
        bits += [0, *((byte >> i) & 1 for i in range(8)), 1]
    bits += [1] * 20
    ratio = sent_baud / read_baud  # sender bits per receiver bit

    def level(t: float) -> int:  # t in receiver bit times
        index = int(t * ratio)
        return bits[index] if index < len(bits) else 1

    out = bytearray()
    end = len(bits) / ratio
    t = 0.0
    step = 0.25
    while t < end:
        if level(t) == 1:
            t += step
            continue
        value = sum(level(t + 1.5 + i) << i for i in range(8))
        if level(t + 9.5) == 1:
            out.append(value)
            t += 10
        else:  # framing error: wait for idle
            t += 10
            while t < end and level(t) == 0:
                t += step
    return bytes(out)


def test_wrong_baud_noise_costs_a_resend_and_nothing_else(quick) -> None:
    rng = random.Random(11)

    async def scenario() -> tuple[ComponentEngine, list[int], int]:
        device = ScriptedDevice(quick)
        engine = await running_engine(quick, device)
        spoiled = 0

        def noise(line: str) -> bytes:
            nonlocal spoiled
            if line not in SETS or len(device.sets()) % 2 == 0:
                return b""  # the resend's reply comes clean
            spoiled += 1
            text = b"".join(rng.choice([b"RELAYON\n", b"RELAYOFF\n", b"ERR\n"]) for _ in range(3))
            wrong = rng.choice([(9600, 19200), (9600, 4800), (9600, 2400), (9600, 38400)])
            # One spoiled line (no terminator), glued to the front of the reply.
            return misread(text, *wrong).replace(b"\n", b"") or b"\xfe"

        device.noise = noise
        try:
            tries = await toggle(engine, device, NOISE_BURSTS)
            return engine, tries, spoiled
        finally:
            await stop(engine, device)

    engine, tries, spoiled = asyncio.run(scenario())
    figure(
        f"wrong-baud noise: {spoiled} replies spoiled by noise over {len(tries)} sets: "
        f"{engine.status.unrecognised_lines} unrecognised lines, "
        f"{sum(tries) - len(tries)} resends, every set confirmed"
    )
    # Each first reply is spoiled: one unrecognised line (noise + reply); a resend's clean
    # reply answers the set (one resend on an idle machine; a loaded one may need another).
    assert spoiled == len(tries)
    assert engine.status.unrecognised_lines == spoiled
    assert all(count >= 2 for count in tries), tries


def test_replies_in_pieces_and_cut_short(quick) -> None:
    async def scenario() -> tuple[ComponentEngine, list[int], list[int]]:
        device = ScriptedDevice(quick)
        engine = await running_engine(quick, device)
        try:
            device.chunked = True  # a slow line: three bytes at a time
            whole = await toggle(engine, device, 10)
            device.chunked = False
            cut = 0

            def truncated(line: str) -> bytes:  # each set's first reply
                nonlocal cut
                if line in SETS and len(device.sets()) % 2:
                    cut += 1
                    return b"RELA"  # the device reset mid-line: no terminator
                return b""

            device.noise = truncated
            after_cut = await toggle(engine, device, 10)
            assert engine.status.unrecognised_lines == cut
            return engine, whole, after_cut
        finally:
            await stop(engine, device)

    engine, whole, after_cut = asyncio.run(scenario())
    assert whole == [1] * 10, "a reply in pieces is one reply"
    assert after_cut == [2] * 10, "a reply cut short costs one resend"


def test_overlong_lines_are_dropped_and_counted(patient) -> None:
    rng = random.Random(3)

    async def scenario() -> tuple[ComponentEngine, list[int], int]:
        device = ScriptedDevice(patient)
        engine = await running_engine(patient, device)
        sent = 0

        def overlong(line: str) -> bytes:
            nonlocal sent
            if line not in SETS:
                return b""
            sent += 1
            length = rng.randint(MAX_LINE_BYTES + 1, 40 * MAX_LINE_BYTES)
            return bytes(rng.choice(b"RELAYONF?xyz\r\x00\xff") for _ in range(length)) + b"\n"

        device.noise = overlong
        try:
            tries = await toggle(engine, device, OVERLONG_LINES)
            return engine, tries, sent
        finally:
            await stop(engine, device)

    engine, tries, sent = asyncio.run(scenario())
    dropped = engine._framer.dropped
    figure(
        f"overlong lines: {sent} lines of {MAX_LINE_BYTES + 1}..{40 * MAX_LINE_BYTES} bytes: "
        f"{dropped} dropped, {engine.status.unrecognised_lines} unrecognised, "
        f"{sum(tries) - len(tries)} resends"
    )
    assert dropped == sent
    assert engine.status.unrecognised_lines == 0
    assert tries == [1] * len(tries)


def test_late_device_is_retried_and_ends_where_asked(quick) -> None:
    """Every answer comes 1.5 x the timeout late: each request is sent again, the late answer
    to the first send answers it, and the device and pyiot agree in the end."""

    async def scenario() -> tuple[ComponentEngine, ScriptedDevice]:
        device = ScriptedDevice(quick)
        engine = await running_engine(quick, device)
        device.late = 1.5 * TIMEOUT_S
        try:
            for n in range(4):
                wish = n % 2 == 0
                await engine.set("relayState", wish)
                await asyncio.sleep(2 * TIMEOUT_S)  # the late answer to the resend comes in
                assert device.sim.values["relayState"] is wish
                assert engine.values["relayState"] is wish
            # Later than all the tries together: the set fails, the late answers still count.
            device.late = (TRIES + 0.5) * TIMEOUT_S
            with pytest.raises(DeviceError, match="no reply"):
                await engine.set("relayState", True)
            await eventually(lambda: engine.values["relayState"] is True, what="late answer")
            device.late = 0
            assert await engine.set("relayState", False) is False
            return engine, device
        finally:
            await stop(engine, device)

    engine, device = asyncio.run(scenario())
    assert engine.status.unrecognised_lines == 0


# ---------------------------------------------------------------------------- silent device
def online_error(state: dict) -> tuple[bool | None, str | None]:
    entry = status(state).get("components", {}).get("relay1", {})
    return entry.get("online"), entry.get("error")


def test_silent_device_gets_the_wish_when_it_speaks_again(own_stack, quick) -> None:
    program = relay_program("mute")

    async def scenario() -> None:
        device = ScriptedDevice(program, "Relay")
        address = await device.start()
        try:
            async with GatewayRun(own_stack, program, {"relay1": f"tcp://{address}"}) as run:
                app = run.apps["mute"]
                await app.until(lambda s: reported(s).get("relayState") is False, 10)
                device.mute = True
                await app.set(relayState=True)
                # Visible: the error in the shadow, the wish kept.
                state = await app.until(lambda s: "no reply" in (online_error(s)[1] or ""), 10)
                assert desired(state).get("relayState") is True
                device.mute = False
                await app.until(
                    lambda s: reported(s).get("relayState") is True and not desired(s), 3
                )
                assert device.sim.values["relayState"] is True
        finally:
            await device.close()

    asyncio.run(scenario())
