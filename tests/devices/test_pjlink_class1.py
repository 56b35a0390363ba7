"""devices/pjlink_class1.iot: PJLink Class 1 exchanges, warm-up, and the pypjlink2 client.

Quoted from the PJLink Class 1 tables makers reproduce: "%1POWR 1" CR is answered
"%1POWR=OK" CR; POWR ? answers 0 standby, 1 on, 2 cooling, 3 warming up; AVMT ? answers 30
(video and audio mute off); errors are "%1xxxx=ERR1".."ERR4" with xxxx the command itself.
The independent client is pypjlink2 (`pypjlink.Projector`), which speaks PJLink over a socket;
the file's driver also meets the exchange recorded in pypjlink's own tests (greeting included).
"""

from __future__ import annotations

import asyncio
import re

import pytest

from pyiot.compiler import Program
from pyiot.lang import IotError, load
from pyiot.lang.login import digest, secrets_for
from pyiot.probe import probe
from pyiot.runtime.component import ComponentEngine, DeviceError, EngineConfig
from pyiot.runtime.transport import open_link
from pyiot.sim import simulator_for
from tests.devices.conftest import Clock, device_file, running
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)

NAME = "pjlink_class1"


@pytest.fixture
def projector(clock):
    return simulator_for(device_file(NAME), clock=clock)


def test_the_standard_exchanges(projector, clock):
    assert projector.respond("%1POWR ?") == b"%1POWR=0\r"  # standby
    assert projector.respond("%1POWR 1") == b"%1POWR=OK\r"
    assert projector.respond("%1POWR ?") == b"%1POWR=3\r"  # warming up
    clock.advance(60)
    assert projector.respond("%1POWR ?") == b"%1POWR=1\r"  # power on
    assert projector.respond("%1AVMT ?") == b"%1AVMT=30\r"  # video+audio mute off
    assert projector.respond("%1AVMT 31") == b"%1AVMT=OK\r"
    assert projector.respond("%1AVMT ?") == b"%1AVMT=31\r"
    assert projector.respond("%1INPT 31") == b"%1INPT=OK\r"
    assert projector.respond("%1INPT ?") == b"%1INPT=31\r"
    assert projector.respond("%1ERST ?") == b"%1ERST=000000\r"
    assert projector.respond("%1POWR 0") == b"%1POWR=OK\r"
    assert projector.respond("%1POWR ?") == b"%1POWR=2\r"  # cooling


def test_input_while_in_standby_is_err3_of_inpt(projector):
    """Each refusal names its command and its reason: ERR3 while off, ERR2 for no such input."""
    assert projector.respond("%1INPT 31") == b"%1INPT=ERR3\r"
    assert projector.respond("%1AVMT 31") == b"%1AVMT=ERR3\r"
    assert projector.respond("%1INPT 99") == b"%1INPT=ERR2\r"


def test_runtime_reads_every_property_and_powers_on():
    async def scenario() -> None:
        clock = Clock()
        async with running(device_file(NAME), "projector", clock=clock) as (engine, port):
            sim = port.sims["projector"]
            for name, prop in engine.device.properties.items():
                if prop.query or prop.group:
                    await engine.read(name)
            assert engine.values["power"] == "standby"
            assert engine.values["errorStatus"] == "000000"
            assert engine.values["lampOn"] is False
            with pytest.raises(DeviceError, match="ERR3"):
                await engine.set("input", "digital1")
            assert await engine.set("power", "on") == "warming"
            clock.advance(60)
            assert await engine.read("power") == "on"
            assert await engine.set("input", "digital2") == "digital2"
            assert sim.values["input"] == "digital2"

    asyncio.run(scenario())


def test_pypjlink2_drives_the_simulated_projector():
    pypjlink = pytest.importorskip("pypjlink")

    def session(host: str, port: int, steps) -> list[object]:
        # The simulator greets each connection with "PJLINK 0" (the file's `greeting`), which
        # authenticate() reads before the first command.
        with pypjlink.Projector.from_address(host, port, timeout=10) as proj:
            proj.authenticate()
            return [step(proj) for step in steps]

    async def scenario() -> None:
        clock = Clock()
        port = simulator_for(device_file(NAME), clock=clock)
        url = await port.serve_tcp()
        host, number = url.removeprefix("socket://").rsplit(":", 1)
        try:
            before = await asyncio.to_thread(
                session,
                host,
                int(number),
                [
                    lambda p: p.get_power(),
                    lambda p: p.set_power("on"),
                    lambda p: p.get_power(),
                    lambda p: p.get_errors(),
                    lambda p: p.get_lamps(),
                ],
            )
            clock.advance(60)
            after = await asyncio.to_thread(
                session,
                host,
                int(number),
                [
                    lambda p: p.get_power(),
                    lambda p: p.set_input("DIGITAL", 2),
                    lambda p: p.get_input(),
                    lambda p: p.set_mute(pypjlink.MUTE_VIDEO | pypjlink.MUTE_AUDIO, True),
                    lambda p: p.get_mute(),
                ],
            )
        finally:
            await port.close()
        assert before[0] == "off" and before[2] == "warm-up"
        assert set(before[3].values()) == {"ok"}
        assert before[4] == [(0, False)]
        assert after[0] == "on"
        assert after[2] == ("DIGITAL", 2)
        assert after[4] == (True, True)
        assert port.sims["projector"].values["input"] == "digital2"

    asyncio.run(scenario())


def test_runtime_against_pypjlinks_recorded_projector():
    """pypjlink's own tests record a projector without a password as b"PJLINK 0\\r" on
    connecting, then b"%1POWR=1\\r" to a power query: the file's driver, against a server that
    plays those bytes, ignores the greeting and reads the power."""
    recorded = {b"%1POWR ?": b"%1POWR=1\r"}
    heard: list[bytes] = []

    async def projector(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"PJLINK 0\r")
        buffer = b""
        while data := await reader.read(4096):
            buffer += data
            while b"\r" in buffer:
                line, buffer = buffer.split(b"\r", 1)
                heard.append(line)
                writer.write(recorded.get(line, b"%1" + line[2:6] + b"=ERR3\r"))
        writer.close()

    async def scenario() -> None:
        model = device_file(NAME)
        program = Program.from_model(model)
        server = await asyncio.start_server(projector, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        engine = ComponentEngine(
            EngineConfig(
                "projector",
                program.model.devices["PJLinkProjector"],
                program.machines["PJLinkProjector"],
                args={},
                modes=program.modes.get("PJLinkProjector"),
            ),
            open_link("tcp", f"{host}:{port}"),
        )
        await engine.start()
        try:
            await eventually(lambda: engine.status.online)
            assert await engine.read("power") == "on"
            assert b"%1POWR ?" in heard
        finally:
            await engine.stop()
            server.close()

    asyncio.run(scenario())


PASSWORD = "JBMIAProjectorLink"  # the PJLink specification's own example password


def _pypjlink_sessions(port, password_tries: list[str]) -> list[object]:
    """One pypjlink2 connection per password; each authenticates, then reads the power."""
    pypjlink = pytest.importorskip("pypjlink")
    host, number = port.url.removeprefix("socket://").rsplit(":", 1)
    results: list[object] = []
    for password in password_tries:
        with pypjlink.Projector.from_address(host, int(number), timeout=10) as proj:
            taken = proj.authenticate(password)
            results.append((taken, proj.get_power() if taken else None))
    return results


def test_pypjlink2_authenticates_with_the_projectors_password():
    """With a password set (PYIOT_SECRET_PASSWORD, here given to the simulator directly) the
    projector greets "PJLINK 1 <random>"; pypjlink2's authenticate() sends MD5(random +
    password) before "%1POWR ?" and gets the power; a wrong password gets "PJLINK ERRA"."""
    pytest.importorskip("pypjlink")

    async def scenario() -> list[object]:
        port = simulator_for(device_file(NAME))
        port.secrets = {"password": PASSWORD}
        await port.serve_tcp()
        try:
            return await asyncio.to_thread(_pypjlink_sessions, port, [PASSWORD, "wrong", PASSWORD])
        finally:
            await port.close()

    assert asyncio.run(scenario()) == [(True, "off"), (False, None), (True, "off")]


def test_each_connection_gets_a_new_random_and_the_digest_of_the_specification():
    """The specification's example: random 498e4a67 and password JBMIAProjectorLink give
    5d8409bc1c3fa39749434aa3a5c38682."""
    login = device_file(NAME).devices["PJLinkProjector"].login
    assert login is not None
    assert digest(login, {"random": "498e4a67"}, {"password": PASSWORD}) == (
        "5d8409bc1c3fa39749434aa3a5c38682"
    )

    async def greetings() -> list[bytes]:
        port = simulator_for(device_file(NAME))
        port.secrets = {"password": PASSWORD}
        url = await port.serve_tcp()
        host, number = url.removeprefix("socket://").rsplit(":", 1)
        seen = []
        try:
            for _ in range(2):
                reader, writer = await asyncio.open_connection(host, int(number))
                seen.append(await reader.readuntil(b"\r"))
                writer.close()
        finally:
            await port.close()
        return seen

    first, second = asyncio.run(greetings())
    assert re.fullmatch(rb"PJLINK 1 [0-9a-f]{8}\r", first) and first != second


def test_the_password_comes_from_the_environment(monkeypatch):
    """Never from the file: PYIOT_SECRET_PASSWORD, or PYIOT_SECRET_<COMPONENT>_PASSWORD."""
    login = device_file(NAME).devices["PJLinkProjector"].login
    assert login is not None
    assert secrets_for(login, "projector", {}) is None  # no password: greeting "PJLINK 0"
    assert secrets_for(login, "projector", {"PYIOT_SECRET_PASSWORD": "a"}) == {"password": "a"}
    both = {"PYIOT_SECRET_PASSWORD": "a", "PYIOT_SECRET_PROJECTOR_PASSWORD": "b"}
    assert secrets_for(login, "projector", both) == {"password": "b"}
    monkeypatch.setenv("PYIOT_SECRET_PASSWORD", PASSWORD)
    assert simulator_for(device_file(NAME)).secrets == {"password": PASSWORD}
    source = (
        'device P(password: string) { transport tcp framing line "\\r" '
        'login md5 "{random}{password}" after /^PJLINK 1 (?P<random>[0-9a-f]{8})$/ }'
    )
    with pytest.raises(IotError, match=r"'password' is a parameter, so its value would be in the file"):
        load(source)


def test_runtime_logs_in_with_the_password_from_the_environment(monkeypatch):
    """pyiot's driver reads the "PJLINK 1 <random>" greeting, starts its first command with the
    digest, and then reads and sets as without a password."""
    monkeypatch.setenv("PYIOT_SECRET_PASSWORD", PASSWORD)

    async def scenario() -> None:
        async with running(device_file(NAME), "projector") as (engine, port):
            assert port.secrets == {"password": PASSWORD}
            assert await engine.read("power") == "standby"
            assert await engine.set("power", "on") == "warming"
            assert port.sims["projector"].values["power"] == "warming"

    asyncio.run(scenario())


def test_runtime_says_when_the_password_is_wrong_or_missing(monkeypatch):
    async def status_error(simulated: str, ours: str | None) -> str:
        port = simulator_for(device_file(NAME))
        port.secrets = {"password": simulated}
        url = await port.serve_tcp()
        if ours is None:
            monkeypatch.delenv("PYIOT_SECRET_PASSWORD", raising=False)
        else:
            monkeypatch.setenv("PYIOT_SECRET_PASSWORD", ours)
        program = Program.from_model(device_file(NAME))
        engine = ComponentEngine(
            EngineConfig.of(program, program.model.things["boardroom"].components["projector"]),
            open_link("serial", url),
        )
        await engine.start()
        try:
            await eventually(lambda: "password" in (engine.status.last_error or ""))
            return engine.status.last_error or ""
        finally:
            await engine.stop()
            await port.close()

    wrong = asyncio.run(status_error(PASSWORD, "guess"))
    assert "refused the password (PJLINK ERRA); check PYIOT_SECRET_PASSWORD" in wrong
    missing = asyncio.run(status_error(PASSWORD, None))
    assert "the device asks for a password: set PYIOT_SECRET_PASSWORD" in missing


def test_probe_logs_in_with_the_password(monkeypatch):
    """`pyiot probe` against a projector with a password: every query matched."""
    monkeypatch.setenv("PYIOT_SECRET_PASSWORD", PASSWORD)

    async def scenario():
        port = simulator_for(device_file(NAME))
        url = await port.serve_tcp()
        try:
            return await probe(device_file(NAME), "projector", url)
        finally:
            await port.close()

    report = asyncio.run(scenario())
    assert {o.status for o in report.outcomes} == {"matched"}, report.outcomes
    assert not report.stray


def test_pyiot_run_simulate_with_a_password_comes_online_and_never_prints_it(
    tmp_path, mosquitto_path
):
    """`pyiot run --simulate` with PYIOT_SECRET_PASSWORD: the simulated projector asks for it
    (`PJLINK 1`), the engine logs in, the projector's shadow says online; the password is in
    none of pyiot's output."""
    from tests.e2e.conftest import ROOT, CliProcess
    from tests.e2e.test_simulate_all import ShadowReader
    from tests.waiting import PATIENCE, wait_until

    path = ROOT / "devices" / f"{NAME}.iot"
    run = CliProcess(
        "run", str(path), "--simulate", "--data", str(tmp_path / "data"), "-v",
        env={"PYIOT_SECRET_PASSWORD": PASSWORD},
    )
    try:
        broker = run.wait_for(r"(mqtt://[0-9.]+:\d+)", PATIENCE).group(1)
        run.wait_for(r"^ready", PATIENCE)
        reader = ShadowReader(broker)
        try:

            def online() -> bool:
                states = (reader.get("boardroom").get("pyiot") or {}).get("components") or {}
                return bool((states.get("projector") or {}).get("online")) and (
                    reader.get("boardroom").get("power") == "standby"
                )

            wait_until(online, PATIENCE, "the projector online, its power read")
        finally:
            reader.close()
    finally:
        run.stop()
    assert any("projector: the device asks for a password; logging in" in line for line in run.lines)
    assert not any(PASSWORD in line for line in run.lines)
