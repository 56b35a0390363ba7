"""Fleet: one gateway of N simulated relays against the local stack with AWS IoT's quotas on.

For each N, a local stack (mosquitto behind the quota front, the shadow service with its
per-thing limits) and one ``pyiot run FILE --simulate`` whose FILE holds N things of one relay
each. An observer subscribed to ``$aws/things/+/shadow/update/accepted`` notes when each thing
first reports. Printed per N:

- connections the gateway used (the front's open connections, less the observer's);
- the most subscriptions any connection held (the front's counter);
- seconds until every thing has reported after a cold start, and after a broker restart
  (mosquitto stopped and started on its ports; the gateway reconnects; then an application
  sets a new `relayState` on every thing, at 90 a second within AWS's 100 publishes a
  second, and the clock stops when every thing has reported its new value: a thing whose
  reported state was already right has nothing to report after a restart);
- quota violations the front counted (refusals and discarded publishes), by quota, and the
  shadow service's 429 answers.

A gateway that does not spread its things over connections exceeds the 50 subscriptions of
one connection beyond a dozen things (about four subscriptions a thing while it starts): the
front disconnects it, as AWS IoT Core would, and not every thing reports. That is what this
benchmark is for.

    python bench/fleet.py [--things 10 100 1000] [--timeout 120]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyiot.local import LocalStack  # noqa: E402

RELAY = (ROOT / "devices" / "relay.iot").read_text(encoding="utf-8")
DEVICE = RELAY[: RELAY.index("\nthing ")]


def fleet_file(folder: Path, count: int) -> Path:
    """One .iot file: the relay device and `count` things of one relay each."""
    things = "".join(
        f'\nthing relay{n:04d} {{\n    component relay1: Relay on serial "/dev/ttyUSB0"\n}}\n'
        for n in range(count)
    )
    path = folder / f"fleet{count}.iot"
    path.write_text(DEVICE + things, encoding="utf-8")
    return path


class Observer:
    """Notes the time of each thing's reports (update/accepted with a reported section), and
    sets desired values the way an application would."""

    def __init__(self, stack: LocalStack) -> None:
        self.lock = threading.Lock()
        self.reports: dict[str, list[float]] = {}
        self.relay: dict[str, tuple[list[str], Any]] = {}  # thing -> (path, last reported)
        self.wanted: dict[str, Any] = {}  # thing -> the relayState set after the restart
        self.applied: dict[str, float] = {}  # thing -> when it reported the value set
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleet-observer")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            "$aws/things/+/shadow/update/accepted", qos=1
        )
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.5)  # type: ignore[arg-type]
        self.client.connect(stack.host, stack.port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        reported = (body.get("state") or {}).get("reported")
        if reported is None:
            return
        thing = msg.topic.split("/")[2]
        now = time.monotonic()
        found = _find(reported, "relayState")
        with self.lock:
            self.reports.setdefault(thing, []).append(now)
            if found is not None:
                self.relay[thing] = found
                if thing in self.wanted and found[1] == self.wanted[thing]:
                    self.applied.setdefault(thing, now)

    def reported_since(self, since: float) -> int:
        with self.lock:
            return sum(1 for times in self.reports.values() if times and times[-1] >= since)

    def wait(self, count: int, since: float, timeout: float) -> float | None:
        """Seconds from `since` until `count` things reported after it; None on timeout."""
        while time.monotonic() - since < timeout:
            if self.reported_since(since) >= count:
                with self.lock:
                    last = sorted(times[-1] for times in self.reports.values() if times)
                return last[count - 1] - since if len(last) >= count else None
            time.sleep(0.05)
        return None

    def wait_relays(self, count: int, timeout: float) -> None:
        """Until every thing has reported its relay (a first report may carry status only)."""
        since = time.monotonic()
        while time.monotonic() - since < timeout:
            with self.lock:
                if len(self.relay) >= count:
                    return
            time.sleep(0.05)

    def set_every_relay(self, since: float, timeout: float) -> None:
        """Ask every thing for the other relay state, 90 publishes a second (the front
        discards beyond AWS's 100 a second on one connection, as AWS IoT Core does)."""
        with self.lock:
            targets = dict(self.relay)
        for n, (thing, (path, current)) in enumerate(sorted(targets.items())):
            if time.monotonic() - since > timeout:
                return
            wanted = not current
            with self.lock:
                self.wanted[thing] = wanted
            desired: Any = wanted
            for key in reversed(path):
                desired = {key: desired}
            payload = json.dumps({"state": {"desired": desired}})
            topic = f"$aws/things/{thing}/shadow/update"
            # Published until the broker has it: right after the restart the link may be down.
            while time.monotonic() - since < timeout:
                if self.client.publish(topic, payload, qos=1).rc == mqtt.MQTT_ERR_SUCCESS:
                    break
                time.sleep(0.05)
            pause = since + (n + 1) / 90 - time.monotonic()
            if pause > 0:
                time.sleep(pause)

    def applied_within(self, count: int, since: float, timeout: float) -> float | None:
        """Seconds from `since` until `count` things reported the value set; None on timeout."""
        while time.monotonic() - since < timeout:
            with self.lock:
                times = sorted(self.applied.values())
            if len(times) >= count:
                return times[count - 1] - since
            time.sleep(0.05)
        return None

    def applied_count(self) -> int:
        with self.lock:
            return len(self.applied)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _find(state: Any, key: str, path: tuple[str, ...] = ()) -> tuple[list[str], Any] | None:
    """The path to `key` in a reported state, and its value."""
    if not isinstance(state, dict):
        return None
    if key in state:
        return [*path, key], state[key]
    for name, inner in state.items():
        found = _find(inner, key, (*path, name))
        if found is not None:
            return found
    return None


def run(count: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = fleet_file(Path(folder), count)
        stack = LocalStack(port=None, data_dir=Path(folder) / "data")
        stack.start()
        observer = Observer(stack)
        gateway = None
        try:
            assert stack.front is not None and stack.shadow_service is not None
            started = time.monotonic()
            gateway = subprocess.Popen(
                [sys.executable, "-m", "pyiot", "run", str(path), "--simulate",
                 "--broker", stack.url, "--log-format", "text"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
            )  # fmt: skip
            output: deque[str] = deque(maxlen=3)
            assert gateway.stdout is not None
            threading.Thread(target=output.extend, args=(gateway.stdout,), daemon=True).start()
            cold = observer.wait(count, started, timeout)
            cold_reported = observer.reported_since(started)
            stats = stack.front.stats()
            observer.wait_relays(count, timeout)
            restarted = time.monotonic()
            stack.restart_broker()
            observer.set_every_relay(restarted, timeout)
            warm = observer.applied_within(count, restarted, timeout)
            warm_reported = observer.applied_count()
            final = stack.front.stats()
            exited = gateway.poll()
            return {
                "exited": None if exited is None else f"exit {exited}: {list(output)[-1:]}",
                "things": count,
                "connections": stats["connections"] - 1,  # less the observer
                "connections_seen": final["connections_seen"],
                "max_subscriptions": final["max_subscriptions"],
                "cold_s": cold,
                "cold_reported": cold_reported,
                "restart_s": warm,
                "restart_reported": warm_reported,
                "violations": final["violations"],
                "discarded": final["discarded"],
            }
        finally:
            if gateway is not None:
                gateway.terminate()
                try:
                    gateway.wait(15)
                except subprocess.TimeoutExpired:
                    # Seen with a gateway the front keeps disconnecting (too many
                    # subscriptions): `pyiot run` does not end on SIGTERM then.
                    print(f"  (pyiot run ignored SIGTERM for 15 s with {count} things; killed)")
                    gateway.kill()
                    gateway.wait()
            observer.close()
            stack.stop()


def _seconds(value: float | None, reported: int, count: int, timeout: float) -> str:
    if value is None:
        return f"{reported}/{count} in {timeout:.0f} s"
    return f"{value:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--things", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--timeout", type=float, default=120.0, help="per phase, seconds")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    logging.basicConfig(level=logging.ERROR)  # the front's quota lines would drown the table
    print(
        f"{'things':>6} {'conns':>5} {'max subs':>8} {'cold start':>18} "
        f"{'after restart':>18} violations"
    )
    for count in args.things:
        result = run(count, args.timeout)
        violations = sum(result["violations"].values())
        detail = ", ".join(f"{name}: {n}" for name, n in result["violations"].items())
        print(
            f"{count:>6} {result['connections']:>5} {result['max_subscriptions']:>8} "
            f"{_seconds(result['cold_s'], result['cold_reported'], count, args.timeout):>18} "
            f"{_seconds(result['restart_s'], result['restart_reported'], count, args.timeout):>18}"
            f" {violations}" + (f" ({detail})" if detail else ""),
            flush=True,
        )
        if result["exited"]:
            print(f"  pyiot run ended early ({result['exited']})", flush=True)


if __name__ == "__main__":
    main()
