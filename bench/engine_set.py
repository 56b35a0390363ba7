"""One component engine alone: how long a set takes against the simulated relay over TCP.

No broker, no shadow: `ComponentEngine.set` -> command written -> reply read -> value
confirmed, 500 times, against bench's usual simulator (devices/relay.iot).

    python bench/engine_set.py [--rounds 500]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyiot.compiler import compile_file  # noqa: E402
from pyiot.runtime.component import ComponentEngine, EngineConfig  # noqa: E402
from pyiot.runtime.transport import open_link  # noqa: E402
from pyiot.sim import simulator_for  # noqa: E402


async def measure(rounds: int) -> list[float]:
    program = compile_file(ROOT / "devices" / "relay.iot")
    port = simulator_for(program.model)
    url = await port.serve_tcp()
    component = program.model.things["relayOne"].components["relay1"]
    engine = ComponentEngine(
        EngineConfig.of(program, component), open_link("tcp", url.removeprefix("socket://"))
    )
    await engine.start()
    try:
        while "relayState" not in engine.values:
            await asyncio.sleep(0.01)
        times = []
        for n in range(rounds):
            started = time.perf_counter()
            await engine.set("relayState", n % 2 == 0)
            times.append((time.perf_counter() - started) * 1000)
        return sorted(times)
    finally:
        await engine.stop()
        await port.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    times = asyncio.run(measure(args.rounds))
    p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
    print(f"engine.set over TCP, {args.rounds} rounds: p50 {p50:.3f} ms, p99 {p99:.3f} ms")


if __name__ == "__main__":
    main()
