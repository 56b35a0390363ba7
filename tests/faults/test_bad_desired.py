"""1,000 generated bad desired documents (100 by default) against a running Gateway.

Wrong types, values out of range, read-only and unknown keys, pyiot's reserved key, huge
values, deep nesting, documents over the shadow's size limit, often beside a good key. Each
bad key is rejected visibly: by the shadow service (an `update/rejected` the application
sees, for documents over its limits), or by pyiot (`reported.pyiot.rejected.KEY` with the
value and the reason, one log line, the desired key cleared), while the good keys of the same
document are applied. At the end the thing still works.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
from typing import Any

from pyiot.local import LocalStack
from pyiot.local.shadow_doc import MAX_DEPTH, MAX_STATE_BYTES
from pyiot.runtime.documents import echo
from pyiot.runtime.shadow_client import ShadowError
from pyiot.sim import DeviceSimulator, PortSimulator
from tests.faults.conftest import TIMEOUT, GatewayRun, LogLines, figure, size
from tests.shadow.conftest import amp_program, desired, reported, status

pytestmark = TIMEOUT

DOCUMENTS = size(1000, 100)
THING = "badwishes"

# The Amp of tests/shadow: power bool, volume int 0..38, input int 1..6 (read-only),
# source enum { hdmi1, hdmi2 }.
WRONG_TYPE = {
    "power": [1, 0, "true", "on", 1.5, [], [True]],
    "volume": [True, "12", 12.5, [12], "", "loud", {"level": 3}],
    "source": ["HDMI1", "vga", 1, True, ["hdmi1"], "", {"hdmi1": True}],
}
OUT_OF_RANGE = [39, -1, 100, 10**9, 2**63, -(2**70), 38.5]
UNKNOWN = ["bass", "treble", "Volume", "POWER", "vol ume", "mute", "é", "x" * 64, "0", "$"]


def nested(depth: int, leaf: Any = 1) -> Any:
    for level in range(depth):
        leaf = {f"n{level}": leaf}
    return leaf


def random_value(rng: random.Random) -> Any:
    return rng.choice(
        [
            rng.randint(-(10**6), 10**6),
            rng.random(),
            rng.choice([True, False]),
            "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 30))),
            [rng.randint(0, 9) for _ in range(rng.randint(0, 5))],
            {"k": rng.randint(0, 9)},
        ]
    )


def bad_entry(rng: random.Random, n: int) -> tuple[str, Any, bool]:
    """(key, value, whether the shadow service itself must refuse the document)."""
    kind = rng.choice(
        ["type", "type", "range", "readonly", "unknown", "unknown", "reserved", "huge", "deep"]
    )
    if kind == "type":
        key = rng.choice(sorted(WRONG_TYPE))
        return key, rng.choice(WRONG_TYPE[key]), False
    if kind == "range":
        return "volume", rng.choice(OUT_OF_RANGE), False
    if kind == "readonly":
        return "input", rng.randint(2, 6), False  # 1 is its value: met, not refused
    if kind == "unknown":
        # Some names come back again and again, as an application's typo would.
        name = rng.choice(UNKNOWN) if rng.random() < 0.7 else f"made{n}"
        return name, random_value(rng), False
    if kind == "reserved":
        return "pyiot", rng.choice([{"components": {"x": 1}}, True, "x"]), False
    if kind == "huge":
        length = rng.choice([300, 2000, 4000, 9000])
        key = rng.choice(["volume", "source", "bass"])
        text = "".join(rng.choice(string.ascii_letters) for _ in range(length))
        return key, text, length > MAX_STATE_BYTES - 100
    depth = rng.randint(1, MAX_DEPTH + 2)  # `desired` itself is one level
    return rng.choice(["volume", "power", "bass"]), nested(depth), depth + 1 > MAX_DEPTH


def documents(count: int, seed: int = 17) -> list[tuple[dict, dict, bool]]:
    """(bad keys, good keys, refused by the service) for each document."""
    rng = random.Random(seed)
    made = []
    for n in range(count):
        entries = {}
        for _ in range(rng.randint(1, 3)):
            key, value, too_big = bad_entry(rng, n)
            entries[key] = (value, too_big)  # a key drawn twice keeps its last value
        bad = {key: value for key, (value, _) in entries.items()}
        refused = any(too_big for _, too_big in entries.values())
        good: dict[str, Any] = {}
        if rng.random() < 0.5 and "volume" not in bad:
            good["volume"] = n % 39  # a different value each time it comes round
        if rng.random() < 0.3 and "power" not in bad:
            good["power"] = rng.choice([True, False])
        made.append((bad, good, refused))
    return made


def test_bad_desired_documents_are_rejected_visibly(flood_stack: LocalStack, pyiot_log: LogLines):
    stack, log = flood_stack, pyiot_log
    program = amp_program(THING)
    docs = documents(DOCUMENTS)

    async def scenario() -> tuple[int, int, int]:
        from pyiot.sim import DeviceSimulator, PortSimulator

        port = PortSimulator([DeviceSimulator("amp1", program.model.devices["Amp"])])
        url = await port.serve_tcp()
        by_service = by_pyiot = 0
        try:
            async with GatewayRun(stack, program, {"amp1": url}) as run:
                app = run.apps[THING]
                await app.until(lambda s: "volume" in reported(s))
                expected_lines = 0
                for number, (bad, good, refused) in enumerate(docs):
                    try:
                        await app.connection.update(THING, desired={**bad, **good}, timeout=5)
                    except ShadowError as err:
                        # Refused it must be when over a limit by itself; it may be when it
                        # is large enough to go over beside what `reported` holds.
                        large = len(json.dumps({**bad, **good})) > MAX_STATE_BYTES // 2
                        assert refused or large, f"document {number} refused: {err}"
                        assert err.code in (400, 413), err
                        by_service += 1
                        continue
                    assert not refused, f"document {number} was accepted: {bad}"
                    by_pyiot += len(bad)
                    expected_lines += len(bad)

                    def handled(state: dict, bad=bad, good=good, lines=expected_lines) -> bool:
                        rejected = status(state).get("rejected", {})
                        return (
                            len(log.matching("rejected desired")) >= lines
                            and not set(bad) & set(desired(state))
                            and not set(good) & set(desired(state))
                            and all(reported(state).get(k) == v for k, v in good.items())
                            and all(
                                k in rejected and rejected[k].get("value") == echo(v)
                                for k, v in bad.items()
                            )
                        )

                    try:
                        await app.until(handled)
                    except AssertionError as err:
                        raise AssertionError(
                            f"document {number} ({bad} beside {good}) not handled visibly; "
                            f"pyiot's last log lines: {log.lines[-3:]}"
                        ) from err
                # Still working: a good value goes through, and clears its old rejection.
                await app.set(volume=7, source="hdmi2")
                await app.until(
                    lambda s: (
                        reported(s).get("volume") == 7
                        and reported(s).get("source") == "hdmi2"
                        and not desired(s)
                        and "volume" not in status(s).get("rejected", {})
                    ),
                )
                assert port.sims["amp1"].values["volume"] == 7
        finally:
            await port.close()
        return by_service, by_pyiot, len(log.matching("rejected desired"))

    by_service, by_pyiot, lines = asyncio.run(scenario())
    others = [line for line in log.lines if "rejected desired" not in line]
    figure(
        f"bad desired: {DOCUMENTS} documents: {by_service} refused by the shadow service "
        f"(400/413), {by_pyiot} bad keys rejected by pyiot with {lines} log lines; "
        f"{len(others)} other warnings"
    )
    assert lines == by_pyiot  # one line per rejected key
    assert not others, others[:5]


async def reject_in_turn(
    stack: LocalStack, log: LogLines, wishes: list[dict[str, Any]]
) -> dict[str, Any]:
    """Set each bad wish; each must be rejected visibly and cleared. Then a good one."""
    program = amp_program(THING)
    port = PortSimulator([DeviceSimulator("amp1", program.model.devices["Amp"])])
    url = await port.serve_tcp()
    try:
        async with GatewayRun(stack, program, {"amp1": url}) as run:
            app = run.apps[THING]
            await app.until(lambda s: "volume" in reported(s))
            for wish in wishes:
                await app.connection.update(THING, desired=wish, timeout=5)
                await app.until(
                    lambda s, wish=wish: all(
                        status(s).get("rejected", {}).get(key, {}).get("value") == echo(value)
                        and key not in desired(s)
                        for key, value in wish.items()
                    ),
                )
            await app.set(power=True)
            return await app.until(lambda s: reported(s).get("power") is True)
    finally:
        await port.close()


def test_one_log_line_per_rejection(flood_stack: LocalStack, pyiot_log: LogLines) -> None:
    """An unknown key beside a wrong-typed one, 30 times: 60 rejections, 60 log lines."""
    wishes = [{f"unknown{n}": n, "volume": f"loud{n}"} for n in range(30)]
    asyncio.run(reject_in_turn(flood_stack, pyiot_log, wishes))
    assert len(pyiot_log.matching("rejected desired")) == 60


def test_huge_bad_values_are_echoed_short(flood_stack: LocalStack, pyiot_log: LogLines) -> None:
    wishes = [{key: key[0] * 3000} for key in ("volume", "power", "source")]
    state = asyncio.run(reject_in_turn(flood_stack, pyiot_log, wishes))
    # The good `power = true` at the end cleared power's rejection; the others stay, short.
    assert "power" not in status(state)["rejected"]
    for key in ("volume", "source"):
        entry = status(state)["rejected"][key]
        assert len(json.dumps(entry)) < 600, f"{key}: {len(json.dumps(entry))} bytes"


def test_many_unknown_keys_do_not_fill_the_shadow(
    flood_stack: LocalStack, pyiot_log: LogLines
) -> None:
    wishes = [{f"setting{n}": "v" * 100} for n in range(60)]
    asyncio.run(reject_in_turn(flood_stack, pyiot_log, wishes))
    assert not pyiot_log.matching("shadow refused the update")
