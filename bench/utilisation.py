"""Serial wire utilisation: back-to-back polls of a relay through a 9600-baud wire.

The relay simulator (`pyiot simulate devices/relay.iot`) sits behind `bench/wire.py`, which
holds every byte for its 8N1 time. A poll is `RELAY?\\n` (7 bytes) out and `RELAYOFF\\n`
(9 bytes) back: at 960 bytes/s each way the wire allows at most 960 / 16 = 60 polls per second.
Measured in the same run:

- the wire's limit (that arithmetic);
- a hand-written pyserial loop (write the query, readline, again) through the same wire;
- pyiot: one ComponentEngine for the relay protocol with `poll every 10ms` (shorter than one
  exchange, so a poll is always waiting), on a pyserial `socket://` link through the wire.

    python bench/utilisation.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import serial

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyiot.compiler import Program  # noqa: E402
from pyiot.lang import load  # noqa: E402
from pyiot.runtime.component import ComponentEngine, EngineConfig  # noqa: E402
from pyiot.runtime.transport import open_link  # noqa: E402

BAUD = 9600
QUERY, REPLY = b"RELAY?\n", b"RELAYOFF\n"

# devices/relay.iot, polled as often as the wire allows.
RELAY = r"""
device Relay "Single-channel serial relay" {
    transport serial { baud 9600 }
    framing line "\n"
    timeout 500ms
    retries 2
    poll every 10ms
    error /^ERR$/
    property relayState: bool {
        query "RELAY?"
        reply /^RELAY(?P<value>ON|OFF)$/
        set   "RELAY{value}"
        map   { ON = true, OFF = false }
    }
}
"""


def start(args: list[str], ready: str) -> tuple[subprocess.Popen, re.Match]:
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(ready, line)
        if found:
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process, found
    raise SystemExit(f"{args} exited before {ready!r}")


def handwritten(url: str, seconds: float) -> float:
    """The baseline: pyserial, write the query, read the reply line, again."""
    port = serial.serial_for_url(url, timeout=2)
    port._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for _ in range(20):  # warm up
            port.write(QUERY)
            port.readline()
        polls = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            port.write(QUERY)
            if port.readline() != REPLY:
                raise SystemExit("baseline: unexpected reply")
            polls += 1
        return polls / elapsed
    finally:
        port.close()


class CountingLink:
    """A link that counts the reply lines coming in."""

    def __init__(self, link):
        self.link = link
        self.lines = 0

    async def open(self) -> None:
        await self.link.open()

    async def read(self) -> bytes:
        data = await self.link.read()
        self.lines += data.count(b"\n")
        return data

    async def write(self, data: bytes) -> None:
        await self.link.write(data)

    async def close(self) -> None:
        await self.link.close()


async def pyiot_polls(url: str, seconds: float) -> tuple[float, int]:
    program = Program.from_model(load(RELAY, "relay-fast.iot"))
    link = CountingLink(open_link("serial", url, {"baud": BAUD}))
    engine = ComponentEngine(
        EngineConfig("relay1", program.model.devices["Relay"], program.machines["Relay"]), link
    )
    await engine.start()
    try:
        await asyncio.sleep(1.0)  # warm up
        lines, started = link.lines, time.perf_counter()
        await asyncio.sleep(seconds)
        polls = link.lines - lines
        rate = polls / (time.perf_counter() - started)
        return rate, engine.status.unrecognised_lines
    finally:
        await engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    python = sys.executable
    sim, found = start(
        [python, "-m", "pyiot", "simulate", str(ROOT / "devices" / "relay.iot")],
        r"socket://(\S+)",
    )
    wire = None
    try:
        wire, wired = start(
            [python, str(ROOT / "bench" / "wire.py"), "--upstream", found.group(1)],
            r"wire: (socket://\S+)",
        )
        url = wired.group(1)
        limit = BAUD / 10 / (len(QUERY) + len(REPLY))
        baseline = handwritten(url, args.seconds)
        ours, unrecognised = asyncio.run(pyiot_polls(url, args.seconds))
    finally:
        for process in (wire, sim):
            if process is not None:
                process.terminate()
                process.wait()
    print(f"polls through a {BAUD}-baud 8N1 wire, {args.seconds:g} s each")
    print(f"{'poller':<34}{'polls/s':>9}{'of limit':>10}")
    rows = [
        ("wire limit (16 bytes per poll)", limit),
        ("hand-written pyserial loop", baseline),
        ("pyiot (poll every 10ms)", ours),
    ]
    for name, rate in rows:
        print(f"{name:<34}{rate:>9.2f}{rate / limit:>10.1%}")
    print(f"pyiot / limit = {ours / limit:.1%} (target >= 95%); unrecognised lines: {unrecognised}")


if __name__ == "__main__":
    main()
