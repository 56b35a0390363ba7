"""One local stack per data folder: how a stack claims its folder and how others find it.

A running :class:`~pyiot.local.stack.LocalStack` holds an exclusive ``flock`` on
``DATA/stack.lock`` and, once its broker and shadow service are up, records where it is in
``DATA/stack.json`` (broker URL, pids, store; written 0600, never through a link). The lock
is the truth: the kernel drops it when the process ends, however it ends, so a record left
by a killed stack is recognised as stale. A stack is *live* when its lock is held and its
broker answers an MQTT CONNECT.

:func:`choose_broker` is the one place that decides where a command or the Python API
connects: the broker the settings name (``--broker``, ``--endpoint``, environment, config
file); else the live stack of the data folder; else, when allowed, a stack started here
(port 1883 if free, else any free port). A system mosquitto on 1883 is never taken for
pyiot's: discovery reads the folder's record, never guesses a port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyiot.errors import PyiotError
from pyiot.local.files import open_private, write_private

try:
    import fcntl
except ImportError:  # not POSIX: one stack per folder is then not enforced
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from pyiot.config import ConnectionSettings
    from pyiot.local.stack import LocalStack
    from pyiot.runtime.broker import Broker

_LOGGER = logging.getLogger(__name__)

RECORD_FILE = "stack.json"
LOCK_FILE = "stack.lock"
PREFERRED_PORT = 1883
#: How long a stack that holds its folder may take to record its address.
_STARTING_PATIENCE_S = 30.0
_PROBE_TIMEOUT_S = 2.0
#: How long `pyiot shadow` and a starting gateway wait for a Device Shadow service's answer.
SHADOW_PROBE_TIMEOUT_S = 3.0


class StackError(PyiotError, RuntimeError):
    """No usable local stack, or a second one asked for: the message says what to do."""

    what = "no usable local stack"


@dataclass(frozen=True)
class StackRecord:
    """What a running stack writes to its data folder."""

    url: str
    pid: int  # the pyiot process that owns the stack
    mosquitto_pid: int | None
    store: str
    login: bool  # the plain listener requires a user name and password
    started: float  # epoch seconds

    def describe(self) -> str:
        return f"{self.url} (pid {self.pid})"


class FolderLock:
    """The exclusive claim of one stack on a data folder (``flock`` on ``stack.lock``)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`StackError` naming the stack that holds it."""
        try:
            # Read-only is enough for flock, and works in a folder that is read-only.
            fd = open_private(self.path, os.O_RDONLY)
        except OSError as err:
            raise StackError(
                f"cannot claim the data folder {self.path.parent}: {err.strerror}; pyiot must "
                "write there (or pick another one with --data)"
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                record = read_record(self.path.parent)
                which = record.describe() if record is not None else "one that is starting"
                raise StackError(
                    f"a local stack already serves {self.path.parent}: {which}; use it "
                    "(pyiot run and pyiot shadow find it), stop it, or give another --data"
                ) from None
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None


def lock_is_held(data_dir: Path) -> bool:
    """True while some process (this one included) holds the folder's lock."""
    path = Path(data_dir) / LOCK_FILE
    if fcntl is None:
        return path.exists()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock just taken
    return False


def write_record(data_dir: Path, record: StackRecord) -> None:
    write_private(Path(data_dir) / RECORD_FILE, json.dumps(asdict(record), indent=2) + "\n")


def remove_record(data_dir: Path, pid: int) -> None:
    """Remove the record if it is this process's (never another stack's)."""
    record = read_record(data_dir)
    if record is not None and record.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(Path(data_dir) / RECORD_FILE)


def read_record(data_dir: Path) -> StackRecord | None:
    """The folder's record as written, or None if there is none or it cannot be read."""
    path = Path(data_dir) / RECORD_FILE
    if path.is_symlink():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return StackRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def broker_answers(url: str, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """True when an MQTT broker at ``mqtt://HOST:PORT`` answers a CONNECT with a CONNACK
    (a refused login counts: it answered)."""
    host, _, port = url.removeprefix("mqtt://").rpartition(":")
    client_id = f"pyiot-probe-{os.getpid()}".encode()
    variable = b"\x00\x04MQTT\x04\x02" + struct.pack("!H", 10)
    payload = struct.pack("!H", len(client_id)) + client_id
    body = variable + payload
    connect = bytes([0x10, len(body)]) + body
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(connect)
            reply = b""
            while len(reply) < 4:
                chunk = sock.recv(4 - len(reply))
                if not chunk:
                    return False
                reply += chunk
            with contextlib.suppress(OSError):
                sock.sendall(b"\xe0\x00")  # DISCONNECT
            return reply[0] == 0x20
    except (OSError, ValueError):
        return False


def find_stack(data_dir: Path, patience: float = _STARTING_PATIENCE_S) -> StackRecord | None:
    """The live stack serving ``data_dir``, or None if no stack holds it.

    A stack that holds the folder but has not recorded its address yet is waited for (up to
    ``patience`` seconds); one whose broker does not answer is an error. Blocking: call it
    off the event loop.
    """
    deadline = time.monotonic() + patience
    while True:
        if not lock_is_held(data_dir):
            return None
        record = read_record(data_dir)
        if record is not None and broker_answers(record.url):
            return record
        if time.monotonic() > deadline:
            where = f" at {record.url} (pid {record.pid})" if record else ""
            raise StackError(
                f"the local stack of {data_dir}{where} holds the folder but its broker does "
                "not answer; stop it (or the process holding it) and start again"
            )
        time.sleep(0.05)


@dataclass
class BrokerChoice:
    """Where to connect, and the stack started for it (the caller stops it) if any."""

    broker: Broker
    client_id: str | None
    stack: LocalStack | None = None
    record: StackRecord | None = None

    @property
    def local(self) -> bool:
        """The broker is pyiot's local stack (found or started)."""
        return self.stack is not None or self.record is not None


async def choose_broker(
    settings: ConnectionSettings,
    data_dir: Path | None,
    *,
    start: bool,
    port: int | None = None,
    aws_limits: bool = True,
    say: Callable[[str], Any] = _LOGGER.warning,
) -> BrokerChoice:
    """Where `pyiot run`, `pyiot shadow` and `pyiot.legacy.Thing` connect.

    The broker of ``settings`` if they name one; else the live stack of ``data_dir`` (default
    folder if None); else, with ``start``, a stack started here on ``port`` (None: 1883 if
    free, else any free port; ``aws_limits`` as in :class:`LocalStack`); else
    :class:`StackError`. ``say`` gets one line about the stack found or started.
    """
    from pyiot.local.stack import LocalStack, default_data_dir
    from pyiot.runtime.broker import BrokerAddress

    if settings.broker is not None:
        return BrokerChoice(settings.broker, settings.client_id)
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    loop = asyncio.get_running_loop()
    for _ in range(3):  # a stack started meanwhile by someone else is found on the next pass
        record = await loop.run_in_executor(None, find_stack, folder)
        if record is not None:
            if record.login:
                raise StackError(
                    f"the local stack of {folder} ({record.describe()}) requires a login: "
                    "give --broker mqtt://USER:PASSWORD@HOST:PORT"
                )
            say(f"local stack: {record.url} (pid {record.pid}, shadows in {record.store})")
            return BrokerChoice(BrokerAddress.parse(record.url), settings.client_id, None, record)
        if not start:
            raise StackError(
                f"no local stack serves {folder}: start one with `pyiot broker` (or `pyiot "
                "run`), give --data FOLDER of a running one, or --broker URL"
            )
        stack = LocalStack(
            port=port, prefer_port=PREFERRED_PORT, data_dir=folder, aws_limits=aws_limits
        )
        try:
            await loop.run_in_executor(None, stack.start)
        except StackError:
            if not lock_is_held(folder):
                raise
            continue  # another process claimed the folder first: use its stack
        say(f"local broker: {stack.url} (shadows in {stack.store_path}){stack.port_note}")
        return BrokerChoice(BrokerAddress.parse(stack.url), settings.client_id, stack)
    raise StackError(f"could not start or find the local stack of {folder}")


async def check_shadow_service(connection: Any, broker: Any, thing: str) -> None:
    """Raise :class:`StackError` at once when no Device Shadow service answers on a plain
    MQTT broker (a system mosquitto, say), instead of a raw timeout on the first request."""
    from pyiot.runtime.broker import BrokerAddress
    from pyiot.runtime.shadow_client import ShadowError, ShadowTimeout

    if not isinstance(broker, BrokerAddress):
        return  # AWS IoT Core always has its shadow service
    try:
        await connection.get(thing, timeout=SHADOW_PROBE_TIMEOUT_S)
    except ShadowError as err:
        if err.client_error == "AWS_ERROR_MQTT_REQUEST_RESPONSE_PUBLISH_FAILURE":
            # MQTT 5: the broker refused the request (its ACL): say so, not awscrt's code.
            raise StackError(
                f"{broker} refuses shadow requests for {thing} from this client: the login "
                "must reach that thing (`pyiot broker --grant USER=THING`, or a login or "
                "certificate named like the thing)"
            ) from None
        if not isinstance(err, ShadowTimeout):
            return  # answered, with an error: a service is there
        raise StackError(
            f"no Device Shadow service answers on {broker}: is it pyiot's local stack "
            "(`pyiot broker`) or AWS IoT Core?"
        ) from None
