"""Transports: open a device link from a pyserial URL or a TCP address, without blocking the loop.

Every URL pyserial knows works (`/dev/ttyUSB0`, `/dev/serial/by-id/...`, `socket://`,
`rfc2217://`, `loop://`); from a `.iot` file only the harmless ones are taken (see
`endpoint_refusal`). Reads and writes are driven by the event loop's reader and writer callbacks
on the port's file descriptor, or by helper threads where a port has none, so no blocking serial
call runs in the loop. Write buffers are bounded and `close()` never waits for a device that
stopped reading: what it has not taken is thrown away.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from pathlib import Path
from typing import Any, Protocol

import serial
from serial.urlhandler import protocol_socket as serial_socket

from pyiot.errors import PyiotError

# Bytes queued for a device at most. Commands are a few bytes and go one at a time, so more
# than this means the device stopped reading: the link is lost, not memory.
MAX_WRITE_BUFFER = 64 * 1024

# How long close() lets a link say goodbye before it is dropped.
CLOSE_GRACE = 1.0


class LinkClosed(PyiotError, ConnectionError):
    """The device link went away (port unplugged, peer closed, stopped reading)."""

    what = "device link closed"


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

    def __init__(self, address: str, url: str | None = None):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"a tcp address is host:port, got {address!r}")
        self.host, self.port = host.strip("[]"), int(port)
        self.url = url or f"tcp://{host}:{port}"  # for log lines: as the user wrote it
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        set_nodelay(self._writer.get_extra_info("socket"))
        self._writer.transport.set_write_buffer_limits(high=MAX_WRITE_BUFFER // 2)

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
        """Queue `data` and wait until the OS took it (the caller bounds the wait)."""
        writer = self._writer
        if writer is None or writer.is_closing():
            raise LinkClosed(f"{self.host}:{self.port} is not open")
        if writer.transport.get_write_buffer_size() + len(data) > MAX_WRITE_BUFFER:
            raise LinkClosed(f"{self.host}:{self.port} is not reading (write buffer full)")
        try:
            writer.write(data)
            await writer.drain()
        except OSError as err:
            raise LinkClosed(f"{self.host}:{self.port}: {err}") from err

    def write_nowait(self, data: bytes) -> bool:
        """Hand `data` to the socket now if nothing is queued before it; False: use `write`.

        A command to an idle socket goes out in the call (no drain, no timer, no task); the
        engine falls back to the bounded `write` whenever bytes are still waiting.
        """
        writer = self._writer
        if writer is None or writer.is_closing() or writer.transport.get_write_buffer_size():
            return False
        try:
            writer.write(data)
        except OSError as err:
            raise LinkClosed(f"{self.host}:{self.port}: {err}") from err
        return True

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if writer.transport.get_write_buffer_size():
            writer.transport.abort()  # a peer that does not read would hold a close forever
        else:
            writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), CLOSE_GRACE)
        writer.transport.abort()  # no-op once closed


class SerialLink:
    """A pyserial port of any URL, read through the event loop."""

    def __init__(self, url: str, settings: dict[str, Any] | None = None):
        self.url = url
        self.settings = {k: v for k, v in (settings or {}).items() if k in _SERIAL_SETTINGS}
        self._port: serial.SerialBase | None = None
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None  # read through the loop while set
        self._write_fd: int | None = None
        self._out = bytearray()  # bytes the device has not taken yet
        self._drained: asyncio.Future[None] | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        kwargs = {_SERIAL_SETTINGS[k]: v for k, v in self.settings.items()}
        # Opening an rfc2217:// port negotiates over the network: keep it off the loop.
        port = await loop.run_in_executor(None, lambda: _open_serial(self.url, kwargs))
        self._port = port
        self._queue = asyncio.Queue()
        sock = getattr(port, "_socket", None)
        if isinstance(sock, socket.socket):
            set_nodelay(sock)
        try:
            self._fd = port.fileno()
        except (AttributeError, NotImplementedError, OSError, ValueError, serial.SerialException):
            self._fd = None  # loop:// says io.UnsupportedOperation, rfc2217:// has no fileno
        self._out = bytearray()
        self._drained = None
        if self._fd is not None:
            # Writes go straight to the descriptor, never blocking: what the device does not
            # take now waits for the loop's writer callback.
            os.set_blocking(self._fd, False)
            self._write_fd = self._fd
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
        except Exception as err:  # noqa: BLE001 - pyserial raises many kinds; each ends the link
            # A level-triggered reader that raised would be called again at once, forever:
            # whatever the port raises, stop reading and let the link count as lost.
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
        """Queue `data` and wait until the device took it (the caller bounds the wait)."""
        if self._port is None:
            raise LinkClosed(f"{self.url} is not open")
        if self._write_fd is None:
            await self._write_in_thread(self._port, data)
            return
        if len(self._out) + len(data) > MAX_WRITE_BUFFER:
            raise LinkClosed(f"{self.url} is not reading (write buffer full)")
        self._out += data
        error = self._flush()
        if error is not None:
            raise error
        if self._out:
            if self._drained is None:
                loop = asyncio.get_running_loop()
                self._drained = loop.create_future()
                loop.add_writer(self._write_fd, self._flush)
            # Shielded: one caller giving up must not fail the others waiting on it.
            await asyncio.shield(self._drained)

    def write_nowait(self, data: bytes) -> bool:
        """Write `data` now when nothing is queued before it; False: use `write`.

        What the descriptor does not take at once is queued and flushed as `write` would;
        a device that stops reading is noticed by the next `write`, which is bounded.
        """
        if self._port is None or self._write_fd is None or self._out:
            return False
        try:
            sent = os.write(self._write_fd, data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as err:
            raise LinkClosed(f"{self.url}: {err}") from err
        if sent < len(data):
            self._out += data[sent:]
            if self._drained is None:
                loop = asyncio.get_running_loop()
                self._drained = loop.create_future()
                loop.add_writer(self._write_fd, self._flush)
        return True

    def _flush(self) -> LinkClosed | None:
        """Write what the descriptor takes now; settle `_drained` when all is out."""
        if self._write_fd is None:
            return LinkClosed(f"{self.url} is not open")
        try:
            sent = os.write(self._write_fd, self._out)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as err:
            error = LinkClosed(f"{self.url}: {err}")
            self._end_writing(error)
            return error
        del self._out[:sent]
        if not self._out:
            self._end_writing(None)
        return None

    def _end_writing(self, error: LinkClosed | None) -> None:
        if self._drained is not None:
            with contextlib.suppress(ValueError, OSError):  # closed meanwhile
                asyncio.get_running_loop().remove_writer(self._write_fd)  # type: ignore[arg-type]
            if not self._drained.done():
                if error is None:
                    self._drained.set_result(None)
                else:
                    self._drained.set_exception(error)
                    self._drained.exception()  # nobody may be left to retrieve it
            self._drained = None
        if error is not None:
            self._out.clear()

    async def _write_in_thread(self, port: serial.SerialBase, data: bytes) -> None:
        # A port without a descriptor (loop://, rfc2217://) only has pyserial's blocking
        # write: a thread of its own runs it. A daemon thread, so one stuck on a device that
        # stopped reading never holds the process; close() ends it.
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if not done.done():
                done.set_result(None) if error is None else done.set_exception(error)

        def run() -> None:
            try:
                port.write(data)
            except Exception as err:  # pyserial and sockets raise many kinds
                loop.call_soon_threadsafe(settle, LinkClosed(f"{self.url}: {err}"))
            else:
                loop.call_soon_threadsafe(settle, None)

        threading.Thread(target=run, name=f"write {self.url}", daemon=True).start()
        await done

    async def close(self) -> None:
        self._stop_reader()
        self._end_writing(LinkClosed(f"{self.url} closed"))
        self._write_fd = None
        port, self._port = self._port, None
        if port is None:
            return
        self._queue.put_nowait(LinkClosed(f"{self.url} closed"))  # wake a waiting read
        if self._thread is None:
            # Unsent output would make the kernel's close of a tty wait for it (30 s by
            # default with flow control): drop it first. Both calls return at once.
            with contextlib.suppress(Exception):
                # types-pyserial declares it on Serial, not SerialBase; every port class has it.
                port.reset_output_buffer()  # type: ignore[attr-defined]
            if isinstance(port, serial_socket.Serial):
                # pyserial's socket:// close sleeps 0.3 s after closing the socket ("give the
                # server some time"): a blocking call that would stall every device on the
                # loop. The socket is shut down before the sleep, so let a thread wait it out.
                threading.Thread(target=_quietly_close, args=(port,), daemon=True).start()
                return
            _quietly_close(port)
            return
        # A descriptor-less port may sit in a blocking call of its own: close it from a
        # daemon thread and wait a moment at most.
        self._thread = None
        closed = threading.Thread(target=port.close, name=f"close {self.url}", daemon=True)
        closed.start()
        await asyncio.get_running_loop().run_in_executor(None, closed.join, CLOSE_GRACE)


def _quietly_close(port: Any) -> None:
    with contextlib.suppress(Exception):
        port.close()


# `.iot` transport settings -> pyserial keyword arguments.
_SERIAL_SETTINGS = {
    "baud": "baudrate",
    "bytesize": "bytesize",
    "parity": "parity",
    "stopbits": "stopbits",
    "xonxoff": "xonxoff",
    "rtscts": "rtscts",
}


# Schemes a `.iot` file may name for a serial port: they only open a port. pyserial's others
# act (`spy://...?file=X` writes a file, `hwgrep://` opens whatever port matches, `alt://`
# picks an implementation class): those need --allow-python or the user's own --device.
SAFE_SCHEMES = ("socket", "rfc2217", "tcp")

# The ways of writing a tcp endpoint: `host:port`, `tcp://host:port`, `socket://host:port`.
TCP_PREFIXES = ("tcp://", "socket://")


def tcp_address(address: str) -> str:
    """`host:port` of a tcp endpoint written in any of its forms."""
    for prefix in TCP_PREFIXES:
        if address.lower().startswith(prefix):
            return address[len(prefix) :]
    return address


def endpoint_refusal(kind: str, address: str) -> str | None:
    """Why a `.iot` file may not name this endpoint by itself (None: it may).

    A device path (no `://`) only opens that path; `socket://`, `rfc2217://` and `tcp://`
    only connect. Custom transports are refused elsewhere (they are Python).
    """
    if kind != "serial" or "://" not in address:
        return None
    scheme = address.split("://", 1)[0].lower()
    if scheme in SAFE_SCHEMES:
        return None
    allowed = ", ".join(f"{s}://" for s in SAFE_SCHEMES)
    return (
        f"endpoint {address!r} is a pyserial {scheme}:// URL, which does more than open a port; "
        f"a file may name a device path, {allowed} or host:port. Run with --allow-python if "
        "you trust this file, or give the port yourself with --device"
    )


def _open_serial(url: str, kwargs: dict[str, Any]) -> Any:
    port = serial.serial_for_url(url, timeout=0, do_not_open=True, **kwargs)
    if url.startswith("socket://"):
        # pyserial empties the input on opening: over TCP that is no stale byte but what the
        # device said on this connection (a PJLink or CoolMasterNet greeting), kept.
        port.reset_input_buffer = lambda: None  # type: ignore[method-assign]  # this port only
    port.open()
    return port


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

    A tcp endpoint may be written `host:port`, `tcp://host:port` or `socket://host:port`
    (what the simulator prints). A `tcp://host:port` URL given for a serial endpoint (e.g. on
    the command line) is a TCP link. Nothing is opened here: `open()` does that.
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
        return TcpLink(tcp_address(address))
    lowered = address.lower()
    if lowered.startswith("tcp://") or (lowered.startswith("socket://") and "?" not in address):
        # A serial device served over TCP (the simulator, a serial server) is read with
        # asyncio: pyserial's socket:// reads through select(), which cannot watch a
        # descriptor above 1023, and a gateway of a thousand devices has them.
        return TcpLink(tcp_address(address), url=address)
    return SerialLink(address, settings)
