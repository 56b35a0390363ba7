"""Devices for the fault tests: a simulator port that records what it receives, and the same
as a process of its own (a TCP device that can be killed with SIGKILL and started again).

    python -m tests.faults.devices FILE PORT RECORD [PROPERTY=JSON ...]

serves FILE's only port on 127.0.0.1:PORT with the given initial values, appends every line it
receives to RECORD, and prints `listening` once it accepts connections.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from pyiot.compiler import load_program
from pyiot.sim import PortSimulator, simulator_for


class RecordingPort(PortSimulator):
    """A simulated port that keeps every line it received, in order."""

    def __init__(self, sims, record: list[str] | None = None):
        super().__init__(sims)
        self.received: list[str] = record if record is not None else []

    @classmethod
    def of(cls, simulator: PortSimulator, record: list[str] | None = None) -> RecordingPort:
        return cls(list(simulator.sims.values()), record)

    def respond(self, line: str) -> bytes:
        self.received.append(line)
        return super().respond(line)


def _main(file: str, port: str, record: str, *initial: str) -> None:
    program = load_program(Path(file))
    recorded = open(record, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (lives as long)

    class FileRecordingPort(PortSimulator):
        def respond(self, line: str) -> bytes:
            recorded.write(line + "\n")
            return super().respond(line)

    sim = FileRecordingPort(list(simulator_for(program.model).sims.values()))
    device = next(iter(sim.sims.values()))
    for setting in initial:
        name, _, value = setting.partition("=")
        device.change(name, json.loads(value))

    async def serve() -> None:
        await sim.serve_tcp("127.0.0.1", int(port))
        print("listening", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await sim.close()

    asyncio.run(serve())


if __name__ == "__main__":
    _main(*sys.argv[1:])
