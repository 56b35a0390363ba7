"""Supervise a mosquitto broker that pyiot configures, starts and owns.

pyiot's local mode needs an MQTT broker that accepts publishes to ``$aws/...`` topics and
works with the awsiotsdk clients over MQTT 3.1.1 and 5; mosquitto 2.x does (amqtt 0.12, say,
refuses client publishes to `$`-topics).
This module writes a minimal configuration (by default loopback only, anonymous, no
persistence; more listeners with passwords or TLS on request), runs the broker in its own
process group and stops it again.

The broker never outlives the pyiot process that started it, even one killed with SIGKILL:
on Linux it is started with ``PR_SET_PDEATHSIG`` (the kernel sends it SIGTERM when its parent
dies). The kernel means the parent *thread*, so every broker is started from one thread that
lives as long as the process.

Memory stays bounded whatever clients do: a client that subscribed with a persistent session
and went away gets at most ``max_queued_messages`` messages or ``max_queued_bytes`` bytes
queued (both apply per client, online or offline; online clients take messages as fast as
they come, so only a stalled or gone client reaches them), and a persistent session not
resumed within ``persistent_client_expiration`` is dropped.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pyiot.errors import PyiotError
from pyiot.local.auth import Listener, is_wildcard
from pyiot.local.files import private_dir, write_private
from pyiot.local.service import Service

_LOGGER = logging.getLogger(__name__)

#: Where mosquitto lives when it is not on PATH (Debian puts it in sbin, Homebrew in its prefix).
_FALLBACK_PATHS = (
    "/usr/sbin/mosquitto",
    "/usr/local/sbin/mosquitto",
    "/opt/homebrew/sbin/mosquitto",
)
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0
_LOG_TAIL_LINES = 20

#: Per client, QoS 1 messages queued beyond those in flight. mosquitto's default of 1000
#: dropped MQTT 3 bursts of more than 1000 updates; 0 (unlimited) let a gone persistent session grow
#: the broker without bound.
MAX_QUEUED_MESSAGES = 10_000
#: Per client, bytes of queued payload; whichever limit comes first applies.
MAX_QUEUED_BYTES = 16 * 1024 * 1024
#: A persistent session nobody resumes is dropped after this long (units h, d, w, m, y).
PERSISTENT_CLIENT_EXPIRATION = "1h"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class PortInUse(PyiotError, RuntimeError):
    """The port asked for is taken by another program."""

    what = "port in use"


class MosquittoNotFound(PyiotError, RuntimeError):
    """The mosquitto executable is not installed (or not where pyiot looks for it)."""

    what = "mosquitto not installed"

    def __init__(self) -> None:
        super().__init__(
            "mosquitto not found: install it (Debian/Ubuntu: `sudo apt-get install mosquitto`, "
            "macOS: `brew install mosquitto`) or put it on PATH"
        )


def find_mosquitto() -> str:
    """Return the path of the mosquitto executable, or raise :class:`MosquittoNotFound`."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in _FALLBACK_PATHS:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise MosquittoNotFound()


def _port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    # Something already answering on the port means it is taken, whatever bind() says
    # (on BSD/macOS SO_REUSEADDR lets a specific-address bind shadow a wildcard listener).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        if probe.connect_ex((host, port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # mosquitto binds with SO_REUSEADDR, so TIME_WAIT leftovers do not make a port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(preferred: int | None) -> int:
    """Return ``preferred`` if nothing uses it on 127.0.0.1, else a port the OS picks."""
    if preferred and _port_is_free(preferred):
        return preferred
    if preferred:
        _LOGGER.info("port %d is in use; picking a free one", preferred)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, exclude: Iterable[int] = ()) -> list[int]:
    """`count` different ports free on 127.0.0.1 now, none in `exclude`.

    The probe sockets stay bound until all are picked: ports picked one after another can
    come back the same (the OS may hand out a just-closed port again), and one broker
    cannot listen twice on a port.
    """
    taken = set(exclude)
    probes: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(sock)
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in taken:
                taken.add(port)
                ports.append(port)
    finally:
        for sock in probes:
            sock.close()
    return ports


def exact_port(port: int, host: str = "127.0.0.1") -> int:
    """Return ``port`` if it is free on ``host``, else raise :class:`PortInUse` (one line)."""
    probe_host = "127.0.0.1" if is_wildcard(host) else host
    if not _port_is_free(port, probe_host):
        raise PortInUse(
            f"port {port} on {host} is in use by another program (a system mosquitto?): "
            "pick another with --port, or leave --port out to use any free port"
        )
    return port


# -- starting mosquitto so that it dies with us -----------------------------------------------
def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _child_setup(parent: int) -> Callable[[], None]:
    """What the forked child does before exec: private files, and die with `parent`."""

    def setup() -> None:
        os.umask(0o077)  # mosquitto's own log file: 0600
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent:
                # The parent died between fork and prctl: nobody would stop this broker.
                os._exit(1)

    return setup


class _Spawner:
    """One long-lived thread that starts every broker.

    PR_SET_PDEATHSIG fires when the thread that forked the child ends, not the process: a
    broker started from a worker thread of an executor would die with that thread.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[concurrent.futures.Future, list[str], dict]]
        self._requests = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name="pyiot-mosquitto-spawner", daemon=True
                )
                self._thread.start()
        done: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
        self._requests.put((done, argv, options))
        return done.result()

    def _serve(self) -> None:
        while True:
            done, argv, options = self._requests.get()
            if not done.set_running_or_notify_cancel():
                continue
            try:
                done.set_result(subprocess.Popen(argv, **options))
            except BaseException as err:  # handed to the caller
                done.set_exception(err)


_SPAWNER = _Spawner()


class Mosquitto(Service):
    """A mosquitto process listening on ``host:port``, configured for pyiot's local stack.

    ``password_file`` makes that listener require a user name and password; ``extra_listeners``
    adds more (e.g. a TLS listener for things with client certificates).
    """

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        workdir: Path | None = None,
        *,
        password_file: Path | None = None,
        extra_listeners: Iterable[Listener] = (),
        anonymous: bool | None = None,
        acl_file: Path | None = None,
        max_queued_messages: int = MAX_QUEUED_MESSAGES,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        persistent_client_expiration: str = PERSISTENT_CLIENT_EXPIRATION,
        file_tag: int | None = None,
    ) -> None:
        self.port = port
        # Names its files (mosquitto-TAG.conf, .log): the port clients use, when a front
        # takes that port and mosquitto listens on another.
        self.file_tag = port if file_tag is None else file_tag
        self.host = host
        if anonymous is None:  # a password file alone means: logins only
            anonymous = password_file is None
        first = Listener(
            port, host, password_file=password_file, anonymous=anonymous, acl_file=acl_file
        )
        self.listeners = [first, *extra_listeners]
        self.max_queued_messages = max_queued_messages
        self.max_queued_bytes = max_queued_bytes
        self.persistent_client_expiration = persistent_client_expiration
        self._workdir = Path(workdir) if workdir is not None else None
        self._own_workdir = False
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths ---------------------------------------------------------------------------
    @property
    def workdir(self) -> Path | None:
        """Directory holding the config and log files (None before :meth:`start`)."""
        return self._workdir

    @property
    def config_path(self) -> Path:
        return self._require_workdir() / f"mosquitto-{self.file_tag}.conf"

    @property
    def log_path(self) -> Path:
        return self._require_workdir() / f"mosquitto-{self.file_tag}.log"

    @property
    def _output_path(self) -> Path:
        # mosquitto writes to stderr before it opens its log file (bad config, bind errors).
        return self._require_workdir() / f"mosquitto-{self.file_tag}.out"

    def _require_workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("Mosquitto has no work directory before start()")
        return self._workdir

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -----------------------------------------------------------------------
    def config_text(self) -> str:
        """The mosquitto.conf pyiot runs the broker with."""
        lines = [
            "# written by pyiot; regenerated on every start",
            # Each listener says who may connect (anonymous on loopback, passwords, TLS).
            "per_listener_settings true",
        ]
        for listener in self.listeners:
            lines += listener.config_lines()
        lines += [
            # Nagle on the broker's sockets costs ~44 ms per QoS 1 request/response hop.
            "set_tcp_nodelay true",
            # Bounded per client, high enough for bursts (the default 1000 drops MQTT 3 bursts).
            f"max_queued_messages {self.max_queued_messages}",
            f"max_queued_bytes {self.max_queued_bytes}",
            f"persistent_client_expiration {self.persistent_client_expiration}",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp true",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # Started as root, mosquitto 2 drops to user "mosquitto", which then cannot open
            # a log file in our (root-owned) work directory and the broker exits.
            lines.append("user root")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Write the config, launch mosquitto and wait until it accepts TCP connections."""
        if self.running:
            return
        executable = find_mosquitto()
        # Checked up front: the readiness probe below cannot tell mosquitto from another
        # program already listening on the port.
        for listener in self.listeners:
            probe_host = "127.0.0.1" if is_wildcard(listener.host) else listener.host
            try:
                taken = not _port_is_free(listener.port, probe_host)
            except OSError:
                taken = False  # e.g. an address not on this host: let mosquitto report it
            if taken:
                raise PortInUse(
                    f"cannot start mosquitto: {listener.host}:{listener.port} is in use"
                )
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="pyiot-mosquitto-"))
            self._own_workdir = True
        # 0700, a real folder of ours: nobody else can plant a link where mosquitto writes.
        private_dir(self._workdir)
        write_private(self.config_path, self.config_text())
        for stale in (self.log_path, self._output_path):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(self._output_path, flags, 0o600), "wb") as output:
            # Own session/process group: Ctrl-C in a terminal reaches pyiot, which then stops
            # the broker in order, instead of killing the broker under a running shadow service.
            self._proc = _SPAWNER.popen(
                [executable, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_child_setup(os.getpid()),
            )
        _LOGGER.info("started mosquitto pid %d on %s", self._proc.pid, self.url)
        try:
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_until_listening(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self.log_tail()
                # Taken between the check in start() and mosquitto's bind: mosquitto's log says
                # so (its own words, the one place pyiot reads them).
                kind = PortInUse if "Address already in use" in tail else RuntimeError
                raise kind(
                    f"mosquitto exited with status {code} while starting on {self.url}:\n" + tail
                )
            try:
                for listener in self.listeners:
                    host = "127.0.0.1" if is_wildcard(listener.host) else listener.host
                    with socket.create_connection((host, listener.port), timeout=0.5):
                        pass
                if self._proc.poll() is None:
                    return
                continue  # it exited meanwhile: report that on the next pass
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mosquitto did not accept connections on {self.url} within "
                    f"{_START_TIMEOUT_S:.0f} s:\n" + self.log_tail()
                )
            time.sleep(0.02)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of mosquitto's stderr and log file, for error messages."""
        chunks: list[str] = []
        if self._workdir is None:
            return "(mosquitto wrote no log)"
        for path in (self._output_path, self.log_path):
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    tail = deque(handle, maxlen=lines)
            except FileNotFoundError:
                continue
            chunks.extend(line.rstrip("\n") for line in tail)
        return "\n".join(chunks) if chunks else "(mosquitto wrote no log)"

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after 5 s) and clean up."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _LOGGER.warning("mosquitto pid %d ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait()
            _LOGGER.info("stopped mosquitto pid %d", proc.pid)
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            self._own_workdir = False

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<Mosquitto {self.url} {state}>"
