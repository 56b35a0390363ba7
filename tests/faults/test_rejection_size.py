"""pyiot's own report always fits the shadow: rejections are bounded in bytes, and a report
the service refuses as too large is sent again smaller, so the components' status (online,
offline) is never lost. Real mosquitto, the local shadow service, a running Gateway."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from pyiot.local import LocalStack
from pyiot.local.shadow_doc import MAX_STATE_BYTES
from pyiot.runtime.rejections import REJECTIONS_BUDGET
from pyiot.runtime.thing import STOPPED
from pyiot.sim import DeviceSimulator, PortSimulator
from tests.faults.conftest import TIMEOUT, GatewayRun, LogLines, relay_program
from tests.shadow.conftest import App, desired, reported, status
from tests.waiting import PATIENCE, eventually

pytestmark = TIMEOUT


def size(document: Any) -> int:
    return len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())


def state_size(document: dict[str, Any]) -> int:
    """Bytes of state as the service counts them against its 8 KB."""
    sections = {k: document[k] for k in ("desired", "reported") if document.get(k)}
    return size(sections)


async def until_document(app: App, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Read the shadow until `check` passes (the documents stream may lag behind a reply)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not check(document := await app.document()):
        if loop.time() - started > PATIENCE:
            raise AssertionError(f"the shadow never got there: {document}")
    return document


async def run_relay(
    stack: LocalStack,
    log: LogLines,
    thing: str,
    wishes: list[dict[str, Any]],
    room: int | None = None,
    shown: Callable[[dict[str, Any]], bool] = lambda state: True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Set each wish in turn and wait until pyiot has answered it (cleared from desired);
    then stop the gateway. With `room`, the application first fills `reported.appdata` so
    that only that many bytes of the shadow are left. Returns the state after the wishes and
    the reported state after the stop."""
    program = relay_program(thing)
    port = PortSimulator([DeviceSimulator("relay1", program.model.devices["Relay"])])
    url = await port.serve_tcp()
    try:
        async with GatewayRun(stack, program, {"relay1": url}) as run:
            app = run.apps[thing]
            await app.until(lambda s: "relayState" in reported(s))
            if room is not None:  # the application keeps its own data in reported
                used = state_size(await app.document()) + len(',"appdata":""')
                filler = "x" * (MAX_STATE_BYTES - used - room)
                await app.connection.update(thing, reported={"appdata": filler})
            for number, wish in enumerate(wishes, 1):
                version = await app.connection.update(thing, desired=wish)
                assert version is not None
                await eventually(lambda n=number: len(log.matching("rejected desired")) >= n)
                # pyiot's answer is in the shadow (the next wish must not find it full).
                await until_document(
                    app, lambda d, v=version, w=wish: d["version"] > v and not set(w) & set(d["desired"])
                )
            state = await app.until(lambda s: not desired(s) and shown(s))
            assert run.gateway is not None
            await run.gateway.stop()
            run.gateway = None
            after = await app.document()
            return state, after["reported"]
    finally:
        await port.close()


def test_twelve_long_unknown_keys_never_make_pyiot_report_too_large(
    flood_stack: LocalStack, pyiot_log: LogLines
) -> None:
    keys = [f"{n:02d}" + "k" * 750 for n in range(12)]
    wishes = [{key: "v" * 750} for key in keys]
    def newest_shown(state: dict[str, Any]) -> bool:
        return any(name.startswith("11k") for name in status(state).get("rejected", {}))

    state, after = asyncio.run(
        run_relay(flood_stack, pyiot_log, "longkeys", wishes, shown=newest_shown)
    )
    rejected = status(state)["rejected"]
    assert size(rejected) <= REJECTIONS_BUDGET
    # The newest is shown (its name shortened), the oldest made way.
    newest = [name for name in rejected if name.startswith("11k")]
    assert len(newest) == 1 and len(newest[0]) <= 64
    assert rejected[newest[0]]["reason"].startswith("unknown property")
    assert not [name for name in rejected if name.startswith("00k")]
    assert not pyiot_log.matching("refused")
    # The connectivity report still goes through.
    assert after["pyiot"]["components"]["relay1"] == {"online": False, "error": STOPPED}


def test_a_report_refused_as_too_large_is_sent_smaller(
    flood_stack: LocalStack, pyiot_log: LogLines
) -> None:
    """The application fills the shadow nearly to its 8 KB: pyiot's rejections no longer fit.
    Its report is sent again without them; its components' status still arrives."""
    # Room for a wish and about two rejections, not three.
    wishes = [{f"unknown{n}": "v" * 20} for n in range(6)]
    state, after = asyncio.run(run_relay(flood_stack, pyiot_log, "nearlyfull", wishes, room=260))
    assert pyiot_log.matching("sending it without the rejections")
    assert not pyiot_log.matching("refused pyiot's status")
    assert state_size(state) <= MAX_STATE_BYTES
    assert set(after["appdata"]) == {"x"}  # the application's data is left alone
    assert after["pyiot"]["components"]["relay1"] == {"online": False, "error": STOPPED}
