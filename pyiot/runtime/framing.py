"""Framing: split a byte stream into the device's replies. Pure, no I/O."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyiot.lang.model import Device
from pyiot.lang.packets import checksum, parse_template

# A line longer than this is noise (wrong baud rate, a stuck transmitter): drop it, count it.
MAX_LINE_BYTES = 4096
# The longest command a simulated device without a command terminator looks for in what it
# received (Extron SIS commands are a few characters).
MAX_COMMAND_BYTES = 256


def _value_problem(text: str, terminators: list[str], encoding: str) -> str | None:
    """Why `text` may not go into a command (None: it may), checked in this order: a
    terminator would end the command early and start another; a control character can do the
    same on many devices (CR, ESC, ETX); a character the wire encoding lacks cannot be sent."""
    for terminator in terminators:
        if terminator and terminator in text:
            return f"the value holds the framing's terminator {terminator!r}"
    for char in text:
        if unicodedata.category(char) == "Cc":
            return f"the value holds the control character {char!r}"
    try:
        text.encode(encoding)
    except UnicodeEncodeError as err:
        bad = err.object[err.start : err.end]
        return f"the value holds {bad!r}, which this device's {encoding} framing cannot send"
    return None


class Prompt:
    """The device's prompt: it has finished answering and is ready for the next command."""

    def __repr__(self) -> str:
        return "PROMPT"


PROMPT = Prompt()


@dataclass
class LineFramer:
    """Lines ended by a terminator (`\\n`, `\\r`, `\\r\\n`, or any other string).

    Bytes are decoded as UTF-8 with replacement so no byte sequence can stop the stream;
    empty lines are skipped (kept with `keep_empty`: a simulated Epson answers a bare `\r`
    with its prompt, a Python API device's bare `eol` means "done"), overlong lines are
    dropped and counted in `dropped`. With a
    `prompt` (Epson's ":", Monoprice's "#"), the prompt at the start of a line is its own frame,
    `PROMPT`, whether or not a terminator follows it: devices send it and then wait.
    """

    terminator: str
    prompt: str | None = None
    # Line ends of replies when they differ from the commands' (`replies "\r\n"`), any of
    # them ending a line; empty: the command terminator.
    replies: tuple[str, ...] = ()
    keep_empty: bool = False
    # Text sent before each command (`before "\r"`: NAD and BenQ want a CR before it as well
    # as after); a line read that starts with it loses it.
    before: str = ""
    # The device's side of a framing whose commands have no end (Extron SIS `1*3!`): whether
    # some text is a whole command, so it is taken as soon as it is complete.
    complete: Callable[[str], bool] | None = None
    # Replies that say their own length (Rotel `product_type=07,RC-1570`, no terminator): a
    # compiled pattern with a `size` group, matched at the start of what is buffered.
    counted: Any = None
    _buffer: bytearray = field(default_factory=bytearray)
    dropped: int = 0
    # Inside an overlong line whose start was already dropped: discard up to its terminator.
    _discarding: bool = False

    def __post_init__(self) -> None:
        seps = [t.encode("utf-8") for t in (self.replies or (self.terminator,)) if t]
        self._seps = sorted(set(seps), key=len, reverse=True)
        self._sep = self._seps[0] if self._seps else b""
        self._prompt = self.prompt.encode("utf-8") if self.prompt else None
        self._incomplete = b""  # the longest buffered start known not to be a whole command
        # After a line ended by CR where CR LF also ends lines, a LF arriving later is the
        # rest of that end, not the start of the next line.
        self._rest = b""

    def _find_end(self) -> tuple[int, int]:
        """Where the first line end in the buffer starts, and its length ((-1, 0): none)."""
        if self.complete is not None and self._buffer:
            ended = self._find_command()
            if ended is not None:
                return ended
        if not self._seps:
            return -1, 0
        if len(self._seps) == 1:
            return self._buffer.find(self._sep), len(self._sep)
        best = (-1, 0)
        for sep in self._seps:  # longest first: at one place CR LF wins over CR
            at = self._buffer.find(sep)
            if at >= 0 and (best[0] < 0 or at < best[0]):
                best = (at, len(sep))
        return best

    def _counted_line(self) -> tuple[bool, str | None]:
        """A reply that says its own length at the buffer's start: (True, None) while it is
        partial, (False, line) once whole, (False, None) when the buffer starts otherwise."""
        found = self.counted.match(bytes(self._buffer[:MAX_LINE_BYTES]).decode("latin-1"))
        if found is None:
            return False, None
        end = found.end() + int(found.group("size"))
        if len(self._buffer) < end:
            return True, None
        raw = bytes(self._buffer[:end])
        del self._buffer[:end]
        return False, raw.decode("utf-8", errors="replace")

    def _find_command(self) -> tuple[int, int] | None:
        """The shortest whole command at the buffer's start, as a line end of width 0, unless
        a line end comes first. Commands are short: only the first bytes are tried."""
        assert self.complete is not None
        first_end = min((at for s in self._seps if (at := self._buffer.find(s)) >= 0), default=-1)
        limit = min(len(self._buffer) if first_end < 0 else first_end, MAX_COMMAND_BYTES)
        # Prefixes tried on an earlier read were not whole then and are not now: skip them
        # (one byte at a time would otherwise try every prefix again).
        tried = len(self._incomplete) if self._buffer.startswith(self._incomplete) else 0
        for size in range(tried + 1, limit + 1):
            text = bytes(self._buffer[:size]).decode("utf-8", errors="replace")
            if self.complete(text.removeprefix(self.before) if self.before else text):
                return size, 0
        self._incomplete = bytes(self._buffer[: max(limit, tried)])
        return None

    def feed(self, data: bytes) -> list[str | Prompt]:
        """Add received bytes; return the complete lines (and prompts) they finish."""
        self._buffer += data
        lines: list[str | Prompt] = []
        while True:
            if self._rest and self._buffer:
                if self._buffer.startswith(self._rest):
                    del self._buffer[: len(self._rest)]
                self._rest = b""
            if self._prompt and not self._discarding and self._buffer.startswith(self._prompt):
                del self._buffer[: len(self._prompt)]
                lines.append(PROMPT)
                continue
            if self.counted is not None and not self._discarding:
                wait, counted = self._counted_line()
                if wait:
                    break
                if counted is not None:
                    lines.append(counted)
                    continue
            end, width = self._find_end()
            if end < 0:
                break
            raw = bytes(self._buffer[:end])
            sep = bytes(self._buffer[end : end + width])
            del self._buffer[: end + width]
            if not self._buffer:
                self._rest = next(
                    (s[len(sep) :] for s in self._seps if len(s) > len(sep) and s.startswith(sep)),
                    b"",
                )
            if self._discarding:
                self._discarding = False
            elif len(raw) > MAX_LINE_BYTES:
                self.dropped += 1
            elif raw or self.keep_empty:
                line = raw.decode("utf-8", errors="replace")
                lines.append(line.removeprefix(self.before) if self.before else line)
        if len(self._buffer) > MAX_LINE_BYTES:
            # Keep the last bytes: they may hold the start of a split terminator.
            keep = max(len(self._sep) - 1, 0)
            del self._buffer[: len(self._buffer) - keep]
            if not self._discarding:
                self.dropped += 1
            # With no line end to wait for (commands without one), the next command is whole.
            self._discarding = bool(self._seps)
        return lines

    def encode(self, text: str) -> bytes:
        """A command as bytes on the wire, terminator (and any text before it) included."""
        return (self.before + text + self.terminator).encode("utf-8")

    def value_problem(self, text: str) -> str | None:
        """Why a desired text may not go into a command on this framing (None: it may)."""
        return _value_problem(text, [self.terminator, *self.replies], "utf-8")

    def reset(self) -> None:
        """Forget a partial line (after a reconnect it belongs to a dead link)."""
        self._buffer.clear()
        self._discarding = False
        self._rest = b""


@dataclass
class PacketFramer:
    """Binary frames described by packet templates (see `pyiot.lang.packets`).

    Frames go out in `template` and are read in `reads` (default: the same), for protocols
    whose replies have another header (Samsung MDC: commands `0xAA cmd ID len data sum`,
    replies `0xAA 0xFF ID len A|N r-cmd data sum`). Payloads are text to the rest of pyiot
    (bytes as Latin-1, one character each), so reply regexes work on them as on lines; a
    `{head:N}` field's bytes are the payload text's first N characters. `end` is appended to
    each sent payload; the characters of `strip` are stripped from the end of received
    payloads (the device's reply end, Onkyo's EOF CR LF; none for a binary protocol, whose
    last data byte may be 0x0D). Frames with a wrong checksum, and bytes before a frame's
    start, are dropped and counted in `dropped`.
    """

    template: str
    end: str = ""
    reads: str | None = None
    strip: str = "\r\n\x1a\x00"
    _buffer: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def __post_init__(self) -> None:
        self._segments = parse_template(self.template)
        self._read_segments = parse_template(self.reads) if self.reads else self._segments
        self._start = self._read_segments[0].data
        self._strip = self.strip.encode("latin-1")

    def value_problem(self, text: str) -> str | None:
        """Why a desired text may not go into a packet's payload (None: it may)."""
        return _value_problem(text, [self.end], "latin-1")

    def encode(self, text: str) -> bytes:
        data = text.encode("latin-1")
        head_width = next((s.width for s in self._segments if s.kind == "head"), 0)
        head, payload = data[:head_width], data[head_width:] + self.end.encode("latin-1")
        frame = bytearray()
        for seg in self._segments:
            if seg.kind == "bytes":
                frame += seg.data
            elif seg.kind == "head":
                frame += head.ljust(seg.width, b"\x00")
            elif seg.kind == "size":
                frame += len(payload).to_bytes(seg.width, seg.order)  # type: ignore[arg-type]
            elif seg.kind == "payload":
                frame += payload.ljust(seg.width, b"\x00") if seg.width else payload
            else:
                frame.append(checksum(seg.checksum, bytes(frame[seg.start :])))
        return bytes(frame)

    def feed(self, data: bytes) -> list[str | Prompt]:
        self._buffer += data
        payloads: list[str | Prompt] = []
        while True:
            start = self._buffer.find(self._start)
            if start < 0:
                # Keep a tail that may be the beginning of the start bytes.
                keep = len(self._start) - 1
                if len(self._buffer) > keep:
                    self.dropped += 1 if self._buffer[: len(self._buffer) - keep].strip() else 0
                    del self._buffer[: len(self._buffer) - keep]
                return payloads
            if start:
                self.dropped += 1
                del self._buffer[:start]
            frame = self._take_frame()
            if frame is None:
                return payloads
            if frame:
                payloads.append(frame)

    def _take_frame(self) -> str | None:
        """One frame from the buffer's start: its payload, "" if it was bad, None if partial."""
        buffer = self._buffer
        at = 0
        size = 0
        head = payload = b""
        for seg in self._read_segments:
            if seg.kind == "bytes":
                if len(buffer) < at + len(seg.data):
                    return None
                if buffer[at : at + len(seg.data)] != seg.data:
                    return self._skip()
                at += len(seg.data)
            elif seg.kind == "head":
                if len(buffer) < at + seg.width:
                    return None
                head = bytes(buffer[at : at + seg.width])
                at += seg.width
            elif seg.kind == "size":
                if len(buffer) < at + seg.width:
                    return None
                size = int.from_bytes(buffer[at : at + seg.width], seg.order)  # type: ignore[arg-type]
                at += seg.width
                if size > MAX_LINE_BYTES:
                    return self._skip()
            elif seg.kind == "payload":
                width = seg.width or size
                if len(buffer) < at + width:
                    return None
                payload = bytes(buffer[at : at + width])
                if seg.width:  # a short payload padded to its fixed width
                    payload = payload.rstrip(b"\x00")
                at += width
            else:
                if len(buffer) < at + 1:
                    return None
                if buffer[at] != checksum(seg.checksum, bytes(buffer[seg.start : at])):
                    return self._skip(at + 1)  # a whole frame, spoiled: drop all of it
                at += 1
        del buffer[:at]
        if self._strip:
            payload = payload.rstrip(self._strip)
        # A frame with nothing in it is still a frame: "" means "bad" to `feed`, so an empty
        # payload after a head is kept by the head; a bare empty frame carries nothing.
        return (head + payload).decode("latin-1")

    def _skip(self, count: int = 1) -> str:
        # Not a frame after all: drop its first byte (or the whole bad frame) and resync.
        self.dropped += 1
        del self._buffer[:count]
        return ""

    def reset(self) -> None:
        self._buffer.clear()


Framer = LineFramer | PacketFramer


def framer_for(device: Device) -> Framer:
    """The framer a device's `framing` statement describes, seen from pyiot's side: it sends
    commands and reads replies."""
    if device.packet is not None:
        return PacketFramer(
            device.packet, device.packet_end, reads=device.packet_reply, strip=_ends(device)
        )
    counted = device.line_counted.compile() if device.line_counted is not None else None
    return LineFramer(
        device.line_terminator,
        device.prompt,
        reply_ends(device),
        before=device.line_before,
        counted=counted,
    )


def reply_ends(device: Device) -> tuple[str, ...]:
    """Every way the device ends a reply line: the framing's, then the replies' own ends
    (`reply /.../ end "\r\n"`); empty when that is just the command terminator."""
    own = [p.reply_end for p in device.properties.values() if p.reply_end]
    if not own:
        return tuple(device.reply_terminators)
    return tuple(dict.fromkeys([*device.reply_ends, *own]))


def device_framer(device: Device, complete: Callable[[str], bool] | None = None) -> Framer:
    """The same framing seen from the device's side (the simulator): it reads commands, ended
    by any end the device accepts, empty ones kept (a bare CR asks an Epson for its prompt),
    and it sends replies (a packet device in its reply frames, with its reply end). Commands
    with no end of their own (`framing line "" replies "\r\n"`) are taken when `complete`
    says the text so far is a whole command."""
    if device.packet is not None:
        end = device.packet_reply_end
        return PacketFramer(
            device.packet_reply or device.packet,
            device.packet_end if end is None else end,
            reads=device.packet,
            strip=_ends(device),
        )
    return LineFramer(
        device.line_terminator,
        replies=tuple(end for end in device.command_ends if end),
        keep_empty=True,
        before=device.line_before,
        complete=complete if not device.line_terminator else None,
    )


def _ends(device: Device) -> str:
    """The characters stripped from the end of received payloads: a text protocol in packets
    (one with an `end`) loses trailing CR, LF and EOF as lines lose their terminator; a binary
    one (no `end`) keeps every byte, as its last data byte may be 0x0D or 0x00."""
    ends = device.packet_end + (device.packet_reply_end or "")
    return "\r\n\x1a" + ends if ends else ""
