"""The local stack's files (issue 11, item 11): private modes, no writing through links, one
clear line for a store pyiot cannot use, and a store deleted while running noticed. Real
mosquitto, the real shadow service, real `pyiot broker` processes."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyiot.local import LocalStack, ShadowStore
from pyiot.local.mosquitto import free_port
from tests.e2e.conftest import run_pyiot
from tests.faults.test_stop_signals import mosquittos_of
from tests.local.conftest import MqttProbe

pytestmark = pytest.mark.timeout(120)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyiot: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_every_file_of_the_stack_is_private(mosquitto_path: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    # As an older pyiot left them: a 0755 folder and a 0644 store.
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    ShadowStore(data / "shadows.sqlite3").close()
    os.chmod(data / "shadows.sqlite3", 0o644)
    with LocalStack(data_dir=data, users={"alice": "pw"}) as stack:
        probe = MqttProbe(stack.host, stack.port, ("alice", "pw"))
        try:  # a write, so that the WAL and SHM files exist
            probe.request("$aws/things/alice/shadow/update", {"state": {"reported": {"a": 1}}})
        finally:
            probe.close()
        folders = [data, data / "mosquitto"]
        files = [p for folder in folders for p in folder.iterdir() if p.is_file()]
        names = {p.name for p in files}
        expected = {"shadows.sqlite3", "shadows.sqlite3-wal", "shadows.sqlite3-shm", "stack.json"}
        assert expected <= names
        assert {"passwords", "service-passwords", f"mosquitto-{stack.port}.conf"} <= names
        assert {f"mosquitto-{stack.port}.log", "acl", "open.acl", "service.acl"} <= names
        for folder in folders:
            assert mode(folder) == 0o700, folder
        for path in files:
            assert mode(path) & 0o077 == 0, f"{path} is {oct(mode(path))}"


def test_planted_links_are_replaced_never_followed(mosquitto_path: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    workdir = data / "mosquitto"
    workdir.mkdir(parents=True, mode=0o700)
    port = free_port(None)
    victims = {}
    planted = [
        workdir / "passwords",
        workdir / "service-passwords",
        workdir / f"mosquitto-{port}.conf",
        workdir / "acl",
        data / "stack.json",
    ]
    for link in planted:
        victim = tmp_path / f"victim-{link.name}"
        victim.write_text("precious\n")
        os.chmod(victim, 0o644)
        link.symlink_to(victim)
        victims[victim] = link
    with LocalStack(port=port, data_dir=data, users={"alice": "pw"}):
        for victim, link in victims.items():
            assert victim.read_text() == "precious\n" and mode(victim) == 0o644, victim
            assert not link.is_symlink() and mode(link) == 0o600, link


def test_a_store_that_is_a_link_is_refused(mosquitto_path: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    victim = tmp_path / "elsewhere.sqlite3"
    ShadowStore(victim).close()
    (data / "shadows.sqlite3").symlink_to(victim)
    line = one_line_error(run_pyiot("broker", "--port", "0", "--data", str(data)))
    assert line.endswith("is a symbolic link; pyiot does not follow it")
    assert mosquittos_of(data) == []


def test_a_corrupt_store_stops_the_broker_with_one_line(mosquitto_path, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "shadows.sqlite3").write_bytes(b"this is not a database " * 200)
    line = one_line_error(run_pyiot("broker", "--port", "0", "--data", str(data)))
    assert f"shadow store {data / 'shadows.sqlite3'} is unusable" in line
    assert "file is not a database" in line and "move it away" in line
    assert mosquittos_of(data) == []
    assert not (data / "stack.json").exists()


@contextlib.contextmanager
def read_only_store(tmp_path: Path) -> Iterator[Path]:
    """A data folder whose store pyiot cannot write: mode 0400 for a normal user; for root
    (whom modes do not stop) a read-only filesystem."""
    data = tmp_path / "data"
    if os.geteuid() != 0:
        data.mkdir(mode=0o700)
        ShadowStore(data / "shadows.sqlite3").close()
        os.chmod(data / "shadows.sqlite3", 0o400)
        yield data
        return
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)]).returncode:
        pytest.skip("running as root, and no read-only filesystem can be mounted here")
    try:
        data = mount / "data"
        data.mkdir(mode=0o700)
        ShadowStore(data / "shadows.sqlite3").close()
        (data / "stack.lock").touch(mode=0o600)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield data
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_read_only_store_is_refused_at_start(mosquitto_path: str, tmp_path: Path) -> None:
    with read_only_store(tmp_path) as data:
        line = one_line_error(run_pyiot("broker", "--port", "0", "--data", str(data)))
        assert f"shadow store {data / 'shadows.sqlite3'} is read-only" in line
        assert mosquittos_of(data) == []


def test_a_store_deleted_while_running_refuses_changes(mosquitto_path, tmp_path, caplog):
    data = tmp_path / "data"
    thing = f"t{uuid.uuid4().hex[:8]}"
    topic = f"$aws/things/{thing}/shadow/update"
    with LocalStack(data_dir=data) as stack:
        probe = MqttProbe(stack.host, stack.port)
        try:
            assert probe.request(topic, {"state": {"reported": {"a": 1}}})["version"] == 1
            for suffix in ("", "-wal", "-shm"):
                (data / f"shadows.sqlite3{suffix}").unlink()
            # Not "accepted" for a change that the next start would have lost.
            refused = probe.request(topic, {"state": {"reported": {"a": 2}}}, reply="rejected")
            assert refused["code"] == 500
            assert refused["message"] == "shadow store shadows.sqlite3 was deleted; restart pyiot"
        finally:
            probe.close()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("was deleted while running" in message for message in errors), errors
