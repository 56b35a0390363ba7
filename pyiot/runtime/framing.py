"""Framing: split a byte stream into the device's replies. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

# A line longer than this is noise (wrong baud rate, a stuck transmitter): drop it, count it.
MAX_LINE_BYTES = 4096


@dataclass
class LineFramer:
    """Lines ended by a terminator (`\\n`, `\\r`, `\\r\\n`, or any other string).

    Bytes are decoded as UTF-8 with replacement so no byte sequence can stop the stream;
    empty lines are skipped, overlong lines are dropped and counted in `dropped`.
    """

    terminator: str
    _buffer: bytearray = field(default_factory=bytearray)
    dropped: int = 0
    # Inside an overlong line whose start was already dropped: discard up to its terminator.
    _discarding: bool = False

    def __post_init__(self) -> None:
        self._sep = self.terminator.encode("utf-8")

    def feed(self, data: bytes) -> list[str]:
        """Add received bytes; return the complete lines they finish."""
        self._buffer += data
        lines: list[str] = []
        while True:
            end = self._buffer.find(self._sep)
            if end < 0:
                break
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + len(self._sep)]
            if self._discarding:
                self._discarding = False
            elif len(raw) > MAX_LINE_BYTES:
                self.dropped += 1
            elif raw:
                lines.append(raw.decode("utf-8", errors="replace"))
        if len(self._buffer) > MAX_LINE_BYTES:
            # Keep the last bytes: they may hold the start of a split terminator.
            keep = len(self._sep) - 1
            del self._buffer[: len(self._buffer) - keep]
            if not self._discarding:
                self.dropped += 1
            self._discarding = True
        return lines

    def encode(self, text: str) -> bytes:
        """A command as bytes on the wire, terminator included."""
        return (text + self.terminator).encode("utf-8")

    def reset(self) -> None:
        """Forget a partial line (after a reconnect it belongs to a dead link)."""
        self._buffer.clear()
        self._discarding = False
