"""A serial wire in a TCP proxy: every byte takes as long as it would on a UART.

At 9600 baud with 8N1 framing a byte is 10 bits (start, 8 data, stop): 960 bytes per second
each way, 1.042 ms per byte. The proxy listens on TCP, connects each client to the upstream
device (a simulator), and delivers each byte, in each direction on its own, no earlier than the
moment its stop bit would have arrived: bytes received while the wire is busy queue behind the
ones before, as they would in a UART's buffer. Nothing ever arrives early, so no poll loop can
beat the wire's limit through it.

    python bench/wire.py --upstream 127.0.0.1:7000 [--baud 9600] [--listen 127.0.0.1:0]

prints `wire: socket://HOST:PORT` once it accepts connections; serves one client at a time,
each on a fresh upstream connection, until killed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import socket
import sys
import threading
import time

BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
# Sleep until this close to a byte's time, then spin: time.sleep alone is ~60 us late.
_SPIN = 0.0002


def _fine_timer_slack() -> None:
    """Ask Linux to wake this thread on time (the default timer slack is 50 us)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK, in nanoseconds


def _until(moment: float) -> None:
    while True:
        remaining = moment - time.perf_counter()
        if remaining <= 0:
            return
        if remaining > _SPIN:
            time.sleep(remaining - _SPIN)


class Wire:
    """One direction of the line: paces bytes from `source` into `sink` at `baud`."""

    def __init__(self, source: socket.socket, sink: socket.socket, baud: int):
        self.source, self.sink = source, sink
        self.byte_time = BITS_PER_BYTE / baud
        self.bytes = 0

    def run(self) -> None:
        _fine_timer_slack()
        free_at = 0.0  # when the last byte queued so far has left the wire
        try:
            while data := self.source.recv(4096):
                # Read as soon as the wire is free: anything already waiting was sent by then.
                start = max(time.perf_counter(), free_at)
                for index in range(len(data)):
                    _until(start + (index + 1) * self.byte_time)
                    self.sink.sendall(data[index : index + 1])
                free_at = start + len(data) * self.byte_time
                self.bytes += len(data)
        except OSError:
            pass
        finally:
            for sock in (self.source, self.sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def _nodelay(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def serve(listen: tuple[str, int], upstream: tuple[str, int], baud: int) -> None:
    server = socket.create_server(listen)
    host, port = server.getsockname()[:2]
    print(f"wire: socket://{host}:{port} -> {upstream[0]}:{upstream[1]} at {baud} baud 8N1")
    sys.stdout.flush()
    while True:
        client, _ = server.accept()
        device = _nodelay(socket.create_connection(upstream))
        _nodelay(client)
        ways = [Wire(client, device, baud), Wire(device, client, baud)]
        threads = [threading.Thread(target=way.run, daemon=True) for way in ways]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        client.close()
        device.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.removeprefix("socket://").removeprefix("tcp://").rpartition(":")
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="the device: HOST:PORT")
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--listen", default="127.0.0.1:0")
    args = parser.parse_args()
    # Hand the GIL over quickly: a pacing thread must not wait 5 ms for the other one.
    sys.setswitchinterval(0.0001)
    serve(_address(args.listen), _address(args.upstream), args.baud)


if __name__ == "__main__":
    main()
