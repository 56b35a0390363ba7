"""The mosquitto supervisor and the LocalStack around it, with a real mosquitto process."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyiot.local import LocalStack, Mosquitto, MosquittoNotFound, PortInUse
from pyiot.local import mosquitto as mosquitto_module
from pyiot.local.mosquitto import find_mosquitto, free_port
from pyiot.local.stack import DATA_DIR_ENV, default_data_dir

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Something else already listening on a loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_find_mosquitto_finds_an_executable(mosquitto_path: str) -> None:
    assert os.access(find_mosquitto(), os.X_OK)


def test_missing_mosquitto_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(mosquitto_module, "_FALLBACK_PATHS", ())
    with pytest.raises(MosquittoNotFound) as info:
        find_mosquitto()
    message = str(info.value)
    assert "\n" not in message
    assert "apt-get install mosquitto" in message and "brew install mosquitto" in message


def test_free_port_keeps_a_free_preferred_port_and_avoids_a_busy_one(listener) -> None:
    busy = listener.getsockname()[1]
    spare = free_port(None)
    assert free_port(spare) == spare
    other = free_port(busy)
    assert other != busy and other > 0


def test_mosquitto_lifecycle(mosquitto_path: str) -> None:
    broker = Mosquitto(free_port(None))
    with broker:
        assert broker.running and port_open(broker.port)
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        # Own process group: a terminal's Ctrl-C goes to pyiot, not straight to the broker.
        assert broker.pid is not None
        assert os.getpgid(broker.pid) != os.getpgid(0)
        config = broker.config_path.read_text()
        for line in (
            f"listener {broker.port} 127.0.0.1",
            "allow_anonymous true",
            "set_tcp_nodelay true",
            f"max_queued_messages {mosquitto_module.MAX_QUEUED_MESSAGES}",
            f"max_queued_bytes {mosquitto_module.MAX_QUEUED_BYTES}",
            "persistent_client_expiration 1h",
            "persistence false",
        ):
            assert line in config.splitlines()
        workdir = broker.workdir
        assert workdir is not None and broker.log_path.exists()
    assert not broker.running and not port_open(broker.port)
    assert not workdir.exists()  # a temporary work directory is removed on stop


def test_mosquitto_refuses_a_port_in_use(mosquitto_path, listener, tmp_path: Path) -> None:
    broker = Mosquitto(listener.getsockname()[1], workdir=tmp_path)
    with pytest.raises(RuntimeError, match="is in use"):
        broker.start()
    assert not broker.running


def test_mosquitto_that_exits_raises_with_its_log(mosquitto_path, tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this host: mosquitto cannot bind and exits.
    broker = Mosquitto(free_port(None), host="192.0.2.1", workdir=tmp_path)
    expected = r"(?s)exited with status \d+ while starting.*mosquitto version"
    with pytest.raises(RuntimeError, match=expected):
        broker.start()
    assert not broker.running
    assert broker.config_path.exists()  # a work directory we were given is kept


def test_local_stack_moves_off_a_busy_preferred_port(mosquitto_path, listener, tmp_path) -> None:
    busy = listener.getsockname()[1]
    with LocalStack(prefer_port=busy, data_dir=tmp_path) as stack:
        assert stack.port != busy
        assert stack.port_note == f" (port {busy} is in use by another program)"
        assert stack.url == f"mqtt://127.0.0.1:{stack.port}"
        assert stack.host == "127.0.0.1"
        assert (tmp_path / "shadows.sqlite3").exists()
        port = stack.port
    assert not port_open(port)
    with pytest.raises(RuntimeError, match="not started"):
        _ = stack.port


def test_an_explicit_busy_port_is_an_error_not_a_move(mosquitto_path, listener, tmp_path) -> None:
    busy = listener.getsockname()[1]
    with pytest.raises(PortInUse, match=f"port {busy} on 127.0.0.1 is in use"):
        LocalStack(port=busy, data_dir=tmp_path).start()
    assert not (tmp_path / "stack.json").exists()


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert default_data_dir().name == "pyiot"
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert default_data_dir() == tmp_path
    assert LocalStack().data_dir == tmp_path


def test_a_port_taken_while_mosquitto_binds_is_port_in_use(
    mosquitto_path, tmp_path: Path, monkeypatch
) -> None:
    """Another program takes the port between pyiot's check and mosquitto's bind (the check is
    skipped here to open that window): mosquitto exits, and the error is PortInUse by class,
    which the local stack answers by picking another port."""
    monkeypatch.setattr(mosquitto_module, "_port_is_free", lambda port, host="": True)
    # Bound, not listening: mosquitto's bind fails, and nothing answers the readiness probe.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        broker = Mosquitto(taken.getsockname()[1], workdir=tmp_path)
        with pytest.raises(PortInUse, match=r"(?s)exited with status \d+ while starting"):
            broker.start()
    assert not broker.running
