"""Supervise a mosquitto broker that pyiot configures, starts and owns.

pyiot's local mode needs an MQTT broker that accepts publishes to ``$aws/...`` topics and
works with the awsiotsdk clients over MQTT 3.1.1 and 5; mosquitto 2.x does (see DESIGN.md §7).
This module writes a minimal configuration (by default loopback only, anonymous, no
persistence; more listeners with passwords or TLS on request), runs the broker in its own
process group and stops it again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from pyiot.local.auth import Listener, is_wildcard
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


class MosquittoNotFound(RuntimeError):
    """The mosquitto executable is not installed (or not where pyiot looks for it)."""

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
    ) -> None:
        self.port = port
        self.host = host
        self.listeners = [Listener(port, host, password_file=password_file), *extra_listeners]
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
        return self._require_workdir() / f"mosquitto-{self.port}.conf"

    @property
    def log_path(self) -> Path:
        return self._require_workdir() / f"mosquitto-{self.port}.log"

    @property
    def _output_path(self) -> Path:
        # mosquitto writes to stderr before it opens its log file (bad config, bind errors).
        return self._require_workdir() / f"mosquitto-{self.port}.out"

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
            # 0 = unlimited; the default of 1000 silently drops MQTT 3 bursts.
            "max_queued_messages 0",
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
                raise RuntimeError(
                    f"cannot start mosquitto: {listener.host}:{listener.port} is in use"
                )
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="pyiot-mosquitto-"))
            self._own_workdir = True
        self._workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        for stale in (self.log_path, self._output_path):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        with open(self._output_path, "wb") as output:
            # Own session/process group: Ctrl-C in a terminal reaches pyiot, which then stops
            # the broker in order, instead of killing the broker under a running shadow service.
            self._proc = subprocess.Popen(
                [executable, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
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
                raise RuntimeError(
                    f"mosquitto exited with status {code} while starting on {self.url}:\n"
                    + self.log_tail()
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
