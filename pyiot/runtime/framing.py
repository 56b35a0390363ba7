"""Framing: split a byte stream into the device's replies. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

# A line longer than this is noise (wrong baud rate, a stuck transmitter): drop it, count it.
MAX_LINE_BYTES = 4096


class Prompt:
    """The device's prompt: it has finished answering and is ready for the next command."""

    def __repr__(self) -> str:
        return "PROMPT"


PROMPT = Prompt()


@dataclass
class LineFramer:
    """Lines ended by a terminator (`\\n`, `\\r`, `\\r\\n`, or any other string).

    Bytes are decoded as UTF-8 with replacement so no byte sequence can stop the stream;
    empty lines are skipped, overlong lines are dropped and counted in `dropped`. With a
    `prompt` (Epson's ":", Monoprice's "#"), the prompt at the start of a line is its own frame,
    `PROMPT`, whether or not a terminator follows it: devices send it and then wait.
    """

    terminator: str
    prompt: str | None = None
    _buffer: bytearray = field(default_factory=bytearray)
    dropped: int = 0
    # Inside an overlong line whose start was already dropped: discard up to its terminator.
    _discarding: bool = False

    def __post_init__(self) -> None:
        self._sep = self.terminator.encode("utf-8")
        self._prompt = self.prompt.encode("utf-8") if self.prompt else None

    def feed(self, data: bytes) -> list[str | Prompt]:
        """Add received bytes; return the complete lines (and prompts) they finish."""
        self._buffer += data
        lines: list[str | Prompt] = []
        while True:
            if self._prompt and not self._discarding and self._buffer.startswith(self._prompt):
                del self._buffer[: len(self._prompt)]
                lines.append(PROMPT)
                continue
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
