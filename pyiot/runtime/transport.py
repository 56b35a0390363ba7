"""Transports: open a device link from a pyserial URL or a TCP address, without blocking the loop.

Every URL pyserial knows works (`/dev/ttyUSB0`, `/dev/serial/by-id/...`, `socket://`,
`rfc2217://`, `loop://`). Reads are driven by the event loop's reader callbacks on the port's
file descriptor, or by a helper thread where a port has none, so no blocking serial call runs
in the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from pathlib import Path
from typing import Any, Protocol

import serial

_LOGGER = logging.getLogger(__name__)


class LinkClosed(ConnectionError):
    """The device link went away (port unplugged, peer closed)."""


class Link(Protocol):
    """What a component needs of a device connection; custom transports implement this."""

    async def open(self) -> None: ...
    async def read(self) -> bytes: ...
    async def write(self, data: bytes) -> None: ...
    async def close(self) -> None: ...


def set_nodelay(sock: socket.socket) -> None:
    """Send small writes at once: Nagle's delay turns a 2 ms round trip into ~45 ms."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class TcpLink:
    """A raw TCP connection (`host:port`), as many AV devices offer their serial protocol on."""

    def __init__(self, address: str):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"a tcp address is host:port, got {address!r}")
        self.host, self.port = host.strip("[]"), int(port)
        self.url = f"tcp://{host}:{port}"  # for log lines
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        set_nodelay(self._writer.get_extra_info("socket"))

    async def read(self) -> bytes:
        assert self._reader is not None
        try:
            data = await self._reader.read(4096)
        except OSError as err:  # reset by the peer: the device went away as much as a close
            raise LinkClosed(f"{self.host}:{self.port}: {err}") from err
        if not data:
            raise LinkClosed(f"{self.host}:{self.port} closed the connection")
        return data

    async def write(self, data: bytes) -> None:
        if self._writer is None:
            raise LinkClosed(f"{self.host}:{self.port} is not open")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as err:
            raise LinkClosed(f"{self.host}:{self.port}: {err}") from err

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None


class SerialLink:
    """A pyserial port of any URL, read through the event loop."""

    def __init__(self, url: str, settings: dict[str, Any] | None = None):
        self.url = url
        self.settings = {k: v for k, v in (settings or {}).items() if k in _SERIAL_SETTINGS}
        self._port: serial.SerialBase | None = None
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        kwargs = {_SERIAL_SETTINGS[k]: v for k, v in self.settings.items()}
        # Opening an rfc2217:// port negotiates over the network: keep it off the loop.
        port = await loop.run_in_executor(
            None, lambda: serial.serial_for_url(self.url, timeout=0, **kwargs)
        )
        self._port = port
        self._queue = asyncio.Queue()
        sock = getattr(port, "_socket", None)
        if isinstance(sock, socket.socket):
            set_nodelay(sock)
        try:
            self._fd = port.fileno()
        except (AttributeError, NotImplementedError, serial.SerialException):
            self._fd = None
        if self._fd is not None:
            loop.add_reader(self._fd, self._on_readable)
        else:
            port.timeout = 0.05
            self._thread = threading.Thread(target=self._read_thread, args=(loop,), daemon=True)
            self._thread.start()

    def _on_readable(self) -> None:
        assert self._port is not None
        try:
            data = self._port.read(4096)  # timeout=0: whatever is there now
            if not data:
                raise LinkClosed(f"{self.url}: no data although readable (port gone?)")
        except (OSError, serial.SerialException) as err:
            self._stop_reader()
            self._queue.put_nowait(LinkClosed(f"{self.url}: {err}"))
            return
        self._queue.put_nowait(data)

    def _read_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        port = self._port
        while port is not None and port.is_open:
            try:
                data = port.read(4096)
            except (OSError, serial.SerialException, TypeError) as err:
                loop.call_soon_threadsafe(self._queue.put_nowait, LinkClosed(f"{self.url}: {err}"))
                return
            if data:
                loop.call_soon_threadsafe(self._queue.put_nowait, data)

    def _stop_reader(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None

    async def read(self) -> bytes:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def write(self, data: bytes) -> None:
        if self._port is None:
            raise LinkClosed(f"{self.url} is not open")
        try:
            # Commands are a few bytes: the OS buffer takes them without waiting.
            self._port.write(data)
        except (OSError, serial.SerialException) as err:
            raise LinkClosed(f"{self.url}: {err}") from err

    async def close(self) -> None:
        self._stop_reader()
        port, self._port = self._port, None
        if port is not None:
            port.close()
            self._queue.put_nowait(LinkClosed(f"{self.url} closed"))  # wake a waiting read


# `.iot` transport settings -> pyserial keyword arguments.
_SERIAL_SETTINGS = {
    "baud": "baudrate",
    "bytesize": "bytesize",
    "parity": "parity",
    "stopbits": "stopbits",
    "xonxoff": "xonxoff",
    "rtscts": "rtscts",
}


def open_link(
    kind: str,
    address: str,
    settings: dict[str, Any] | None = None,
    allow_python: bool = False,
    search_dir: Path | None = None,
) -> Link:
    """A link for an endpoint: `tcp` + `host:port`, `serial` + any pyserial URL, or
    `custom` + `module:Class` (a class implementing `Link`, built with the device's transport
    settings; it is Python from the file, so it needs `allow_python`).

    A `tcp://host:port` URL given for a serial endpoint (e.g. on the command line) is a TCP link.
    """
    if kind == "custom":
        from pyiot.runtime.hooks import PythonNotAllowed, load_python

        if not allow_python:
            raise PythonNotAllowed(
                f"custom transport {address} runs Python; run with --allow-python if you "
                "trust this file"
            )
        link_class = load_python(address, search_dir, f"custom transport {address}")
        try:
            return link_class(**(settings or {}))
        except TypeError as err:  # a setting the class does not take
            raise ValueError(f"custom transport {address}: {err}") from None
    if kind == "tcp":
        return TcpLink(address.removeprefix("tcp://"))
    if address.startswith("tcp://"):
        return TcpLink(address.removeprefix("tcp://"))
    return SerialLink(address, settings)
