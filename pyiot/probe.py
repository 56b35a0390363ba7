"""`pyiot probe`: check a device file against the real device, and transcripts of the exchange.

For the user who has the device and wants to know whether the file is right. The probe opens the
component's link, sends each query of the file once (with `--sets`, also each set, with the value
the device just reported, so nothing changes) and says per property: matched, unmatched (the
line quoted), timeout, or error reply, with the round-trip time, plus every line the device sent
that no pattern matched. It never sends a set unless asked.

It drives the protocol directly (`DeviceProtocol`, a `Link` and the device's framer), not the
component engine: one request at a time, no retries, no polling, nothing sent on its own.

`--record FILE` writes the exchange as a transcript (docs/transcripts.md): timestamped lines,
both directions, bytes exact. `Replay` serves a transcript as a device (`pyiot simulate FILE
--replay TRANSCRIPT`), and `probe_transcript` checks a file against one, so a user's recording
of a real device becomes a regression test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyiot.lang.login import digest, greeting_groups, secrets_for
from pyiot.lang.model import Device, GroupQuery, IotFile, Property, Value
from pyiot.lang.values import BadValue, render_value
from pyiot.runtime.framing import PROMPT, Framer, framer_for
from pyiot.runtime.protocol import BadReply, DeviceProtocol, Request
from pyiot.runtime.transport import Link, LinkClosed, open_link, set_nodelay

# A transcript keeps at most this many entries (a chatty device must not fill the memory).
MAX_ENTRIES = 100_000
# Lines no pattern matched that a report lists at most.
MAX_STRAY = 200
TRANSCRIPT_HEADER = "# pyiot transcript 1"


# ---------------------------------------------------------------------------------- transcripts
def escape(data: bytes) -> str:
    """Bytes as one line of text: printable ASCII as is, `\\\\ \\r \\n \\t`, else `\\xNN`."""
    out = []
    for byte in data:
        char = chr(byte)
        if char == "\\":
            out.append("\\\\")
        elif char in "\r\n\t":
            out.append({"\r": "\\r", "\n": "\\n", "\t": "\\t"}[char])
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def unescape(text: str) -> bytes:
    """The bytes `escape` wrote; `ValueError` for a bad escape."""
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out += char.encode("latin-1")
            i += 1
            continue
        code = text[i + 1 : i + 2]
        if code in ("\\", "r", "n", "t"):
            out += {"\\": b"\\", "r": b"\r", "n": b"\n", "t": b"\t"}[code]
            i += 2
        elif code == "x" and len(text) >= i + 4:
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            raise ValueError(f"bad escape at column {i + 1}: {text[i : i + 4]!r}")
    return bytes(out)


@dataclass
class Entry:
    """One write to the device (`>`) or one read from it (`<`), at `seconds` from the start."""

    seconds: float
    direction: str  # ">" sent to the device, "<" received from it
    data: bytes


@dataclass
class Transcript:
    """A recorded exchange: header comments (`# key value`) and entries in order."""

    entries: list[Entry] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    dropped: int = 0
    _start: float = field(default_factory=time.monotonic)

    def add(self, direction: str, data: bytes) -> None:
        if len(self.entries) >= MAX_ENTRIES:
            self.dropped += 1
            return
        self.entries.append(Entry(time.monotonic() - self._start, direction, data))

    def dumps(self) -> str:
        lines = [TRANSCRIPT_HEADER]
        lines += [f"# {key} {value}" for key, value in self.notes.items()]
        if self.dropped:
            lines.append(f"# dropped {self.dropped} entries past {MAX_ENTRIES}")
        lines += [f"{e.seconds:.6f} {e.direction} {escape(e.data)}" for e in self.entries]
        return "\n".join(lines) + "\n"

    @classmethod
    def loads(cls, text: str, name: str = "<transcript>") -> Transcript:
        """Parse a transcript; `ValueError` naming `name:line` for a malformed line."""
        transcript = cls()
        for number, line in enumerate(text.split("\n"), 1):
            if not line or line.startswith("#"):
                if line.startswith("# ") and line != TRANSCRIPT_HEADER:
                    key, _, value = line[2:].partition(" ")
                    transcript.notes[key] = value
                continue
            parts = line.split(" ", 2)
            if len(parts) < 3 or parts[1] not in (">", "<"):
                raise ValueError(f"{name}:{number}: expected 'SECONDS >|< BYTES'")
            try:
                entry = Entry(float(parts[0]), parts[1], unescape(parts[2]))
            except ValueError as err:
                raise ValueError(f"{name}:{number}: {err}") from None
            transcript.entries.append(entry)
        return transcript

    @classmethod
    def load(cls, path: str | Path) -> Transcript:
        return cls.loads(Path(path).read_text(encoding="utf-8"), str(path))


class RecordingLink:
    """A link that writes both directions into a transcript, bytes exact."""

    def __init__(self, link: Link, transcript: Transcript):
        self._link = link
        self.transcript = transcript

    async def open(self) -> None:
        await self._link.open()

    async def read(self) -> bytes:
        data = await self._link.read()
        if data:
            self.transcript.add("<", data)
        return data

    async def write(self, data: bytes) -> None:
        self.transcript.add(">", data)
        await self._link.write(data)

    async def close(self) -> None:
        await self._link.close()


# ---------------------------------------------------------------------------------- probing
@dataclass
class Outcome:
    """What one request got: `matched`, `unmatched`, `timeout`, `error` or `sent` (a set that
    nothing answers, done once written)."""

    name: str
    command: str
    status: str
    line: str | None = None
    values: dict[str, Value] = field(default_factory=dict)
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("matched", "sent")

    def describe(self) -> str:
        took = f"{self.seconds * 1000:8.1f} ms" if self.seconds is not None else " " * 11
        if self.status == "matched":
            shown = ", ".join(f"{k}={render_value(v)}" for k, v in self.values.items())
            detail = f"{self.line!r}" + (f" -> {shown}" if shown else "")
        elif self.status == "unmatched":
            detail = f"{self.line!r} to {self.command!r} matches no pattern"
        elif self.status == "error":
            detail = f"error reply {self.line!r} to {self.command!r}"
        elif self.status == "timeout":
            detail = f"no answer to {self.command!r}"
        else:
            detail = f"{self.command!r} written (nothing answers it)"
        return f"{self.name:<22} {self.status:<9} {took}  {detail}"


@dataclass
class Report:
    """Everything a probe found."""

    outcomes: list[Outcome] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)  # lines no pattern matched
    stray_dropped: int = 0

    @property
    def all_matched(self) -> bool:
        return bool(self.outcomes) and all(o.ok for o in self.outcomes)

    def lines(self) -> list[str]:
        out = [o.describe() for o in self.outcomes]
        if self.stray:
            more = f", {self.stray_dropped} more" if self.stray_dropped else ""
            out.append(f"lines no pattern matched ({len(self.stray)}{more}):")
            out += [f"  {line!r}" for line in self.stray]
        good = sum(o.ok for o in self.outcomes)
        out.append(f"{good} of {len(self.outcomes)} matched")
        return out


class Prober:
    """One device on one open link: requests one at a time, every frame accounted for."""

    def __init__(
        self,
        device: Device,
        args: dict[str, Value],
        link: Link,
        framer: Framer,
        component: str = "",
    ):
        self.device = device
        self.component = component
        self._login_prefix = ""  # a `login` digest the first command starts with
        self.protocol = DeviceProtocol(device, args)
        self.link = link
        self.framer = framer
        self.report = Report()
        self._frames: asyncio.Queue = asyncio.Queue(maxsize=10_000)
        self._reader: asyncio.Task | None = None
        self._closed = False
        greeting = device.greeting or ""
        self._greeting = greeting.strip("\r\n\x00") if greeting != device.prompt else None

    async def __aenter__(self) -> Prober:
        await self.link.open()
        self._reader = asyncio.create_task(self._read())
        await self._log_in()
        return self

    async def _log_in(self) -> None:
        """A `login` device (PJLink with a password): read its greeting, keep the digest for
        the first command. Without the password set, the probe goes on and the device's
        refusal (`PJLINK ERRA`) shows among the lines no pattern matched."""
        login = self.device.login
        secrets = secrets_for(login, self.component) if login is not None else None
        if login is None or secrets is None:
            return
        async def greeting() -> str:
            while (frame := await self._frames.get()) is not None:
                groups = greeting_groups(login, str(frame)) if frame is not PROMPT else None
                if groups is not None:
                    return digest(login, groups, secrets)
            return ""

        with contextlib.suppress(asyncio.TimeoutError):
            self._login_prefix = await asyncio.wait_for(greeting(), self.device.timeout)

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self.link.close()

    async def _read(self) -> None:
        try:
            while data := await self.link.read():
                for frame in self.framer.feed(data):
                    if self._frames.full():
                        self._frames.get_nowait()  # bounded: the oldest is lost, not the loop
                    self._frames.put_nowait(frame)
        except (LinkClosed, ConnectionError, OSError):
            pass
        self._closed = True
        self._frames.put_nowait(None)

    def _stray(self, line: str) -> None:
        if line == self._greeting or self.protocol.recognises(line):
            return
        if len(self.report.stray) < MAX_STRAY:
            self.report.stray.append(line)
        else:
            self.report.stray_dropped += 1

    def _drain(self) -> None:
        while not self._frames.empty():
            frame = self._frames.get_nowait()
            if frame is not None and frame is not PROMPT:
                self._stray(str(frame))

    async def exchange(self, name: str, request: Request, timeout: float) -> Outcome:
        """Send one request and wait for what answers it, up to `timeout` seconds."""
        self._drain()
        started = time.monotonic()
        prefix, self._login_prefix = self._login_prefix, ""
        await self.link.write(self.framer.encode(prefix + request.text))
        outcome = Outcome(name, request.text, "timeout")
        if not self.protocol.expects_answer(request):
            outcome.status = "sent"
            return outcome
        deadline = started + timeout
        unmatched: list[str] = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = await asyncio.wait_for(self._frames.get(), left)
            except TimeoutError:
                break
            if frame is None:  # the link closed
                break
            if frame is PROMPT:
                if request.is_set:
                    return self._done(outcome, "matched", "(prompt)", {}, started)
                continue
            line = str(frame)
            if self.device.echo and line.strip() == request.text:
                continue
            try:
                values = self.protocol.answers(request, line)
            except BadReply:
                values = None
            if values is None and self.protocol.acknowledges(request, line):
                values = {}
            if values is not None:
                return self._done(outcome, "matched", line, values, started)
            if self.protocol.is_error(line, request):
                return self._done(outcome, "error", line, {}, started)
            if line != self._greeting and not self.protocol.recognises(line):
                unmatched.append(line)
        for line in unmatched:
            self._stray(line)
        if unmatched:
            outcome.status, outcome.line = "unmatched", unmatched[0]
        return outcome

    @staticmethod
    def _done(outcome: Outcome, status: str, line: str, values: dict, started: float) -> Outcome:
        outcome.status, outcome.line, outcome.values = status, line, values
        outcome.seconds = time.monotonic() - started
        return outcome

    async def run(self, sets: bool = False) -> Report:
        """Each query once; with `sets`, each set with the value just reported."""
        seen: dict[str, Value] = {}
        for target in self.protocol.readable_targets():
            request = self.protocol.read_request(target)
            outcome = await self.exchange(_name(target), request, self._timeout(target))
            seen.update(outcome.values)
            self.report.outcomes.append(outcome)
        if sets:
            for prop in self.device.properties.values():
                if not prop.writable or prop.name not in seen:
                    continue
                try:
                    request = self.protocol.set_request(prop.name, seen[prop.name])
                except BadValue as err:
                    self.report.outcomes.append(Outcome(f"set {prop.name}", str(err), "error"))
                    continue
                timeout = prop.set_timeout or self._timeout(prop)
                self.report.outcomes.append(
                    await self.exchange(f"set {prop.name}", request, timeout)
                )
        self._drain()
        return self.report

    def _timeout(self, target: Property | GroupQuery) -> float:
        own = target.timeout if isinstance(target, Property) else None
        return own or self.device.timeout


def _name(target: Property | GroupQuery) -> str:
    return target.name if isinstance(target, Property) else f"query {target.name}"


def find_component(model: IotFile, name: str) -> tuple[Device, dict[str, Value], str]:
    """The device, arguments and endpoint kind of component `name` (or of a device `name` in
    a file without things). `LookupError` names the known ones."""
    for thing in model.things.values():
        comp = thing.components.get(name)
        if comp is not None:
            kind = thing.ports[comp.port].kind if comp.port else comp.endpoint_kind
            return model.devices[comp.device], comp.args, kind
    if name in model.devices and not model.devices[name].params:
        return model.devices[name], {}, model.devices[name].transport.kind
    known = [c for t in model.things.values() for c in t.components] or list(model.devices)
    raise LookupError(f"no component {name!r} (known: {', '.join(known)})")


async def probe(
    model: IotFile, component: str, url: str, sets: bool = False,
    transcript: Transcript | None = None,
) -> Report:
    """Probe the device of `component` at `url`; record into `transcript` when given."""
    device, args, kind = find_component(model, component)
    link: Link = open_link(kind, url, device.transport.settings)
    if transcript is not None:
        transcript.notes.update({"component": f"{component} ({device.name})", "url": url})
        link = RecordingLink(link, transcript)
    async with Prober(device, args, link, framer_for(device), component) as prober:
        return await prober.run(sets)


# ---------------------------------------------------------------------------------- replay
class Replay:
    """A device that answers from a transcript: each command recorded (`>`) is answered with
    the bytes the device sent after it (`<`), up to the next command; what came before the
    first command is sent when a client connects. Commands are taken in recorded order where
    they repeat; a command never recorded is not answered."""

    def __init__(self, transcript: Transcript):
        self.greeting = b""
        self.exchanges: list[tuple[bytes, bytes]] = []
        for entry in transcript.entries:
            if entry.direction == ">":
                self.exchanges.append((entry.data, b""))
            elif self.exchanges:
                command, answer = self.exchanges[-1]
                self.exchanges[-1] = (command, answer + entry.data)
            else:
                self.greeting += entry.data
        self.unknown = 0
        self.url: str | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    def answer(self, buffer: bytearray, cursor: int) -> tuple[bytes, int] | None:
        """The answer to the command at the buffer's start and the next cursor; None when the
        buffer may still become a command. Consumes what it answers or drops."""
        order = list(range(cursor, len(self.exchanges))) + list(range(cursor))
        for i in order:
            command, answer = self.exchanges[i]
            if buffer.startswith(command):
                del buffer[: len(command)]
                return answer, i + 1
        if any(command.startswith(bytes(buffer)) for command, _ in self.exchanges):
            return None
        self.unknown += 1
        del buffer[:1]  # not the start of any command: drop a byte and look again
        return b"", cursor

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = await asyncio.start_server(self._client, host, port)
        bound = self._server.sockets[0].getsockname()
        self.url = f"socket://{bound[0]}:{bound[1]}"
        return self.url

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        set_nodelay(writer.get_extra_info("socket"))
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        buffer = bytearray()
        cursor = 0
        try:
            if self.greeting:
                writer.write(self.greeting)
            while data := await reader.read(4096):
                buffer += data
                while buffer and (found := self.answer(buffer, cursor)) is not None:
                    answer, cursor = found
                    if answer:
                        writer.write(answer)
                del buffer[:-4096]  # bounded: a command is never this long
        except (ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=1.0)
            await self._server.wait_closed()
            self._server = None


async def probe_transcript(model: IotFile, component: str, transcript: Transcript) -> Report:
    """Probe `component` of a file against a recorded device (for tests: a user's recording
    of a real device becomes a regression test)."""
    replay = Replay(transcript)
    url = await replay.serve_tcp()
    try:
        sets = transcript.notes.get("probe") == "queries and sets"
        return await probe(model, component, url, sets=sets)
    finally:
        await replay.close()


# ---------------------------------------------------------------------------------- command line
def cmd_probe(args: argparse.Namespace) -> int:
    """Exit 0 when every request was answered as the file expects, 1 otherwise."""
    from pyiot.compiler import load_program

    name, sep, url = args.device.partition("=")
    if not (sep and name and url):
        raise ValueError(f"--device takes NAME=URL, got {args.device!r}")
    program = load_program(args.file)
    transcript = Transcript() if args.record else None
    if transcript is not None:
        transcript.notes["file"] = str(args.file)
        transcript.notes["probe"] = "queries and sets" if args.sets else "queries"
    report = asyncio.run(probe(program.model, name, url, args.sets, transcript))
    print(f"probe {name} at {url}")
    for line in report.lines():
        print(f"  {line}" if not line.startswith(("lines", "  ")) else line)
    if transcript is not None:
        Path(args.record).write_text(transcript.dumps(), encoding="utf-8")
        print(f"transcript written to {args.record} ({len(transcript.entries)} entries)")
    return 0 if report.all_matched else 1


def cmd_replay(args: argparse.Namespace, until_stopped) -> int:
    """`pyiot simulate FILE --replay TRANSCRIPT`: serve the recorded device on TCP."""
    transcript = Transcript.load(args.replay)

    async def serve() -> None:
        replay = Replay(transcript)
        host, _, port = (args.listen or "tcp://127.0.0.1:0").removeprefix("tcp://").rpartition(":")
        url = await replay.serve_tcp(host or "127.0.0.1", int(port or 0))
        print(f"replaying {args.replay} ({len(replay.exchanges)} exchanges) on {url}", flush=True)
        await until_stopped()
        await replay.close()

    asyncio.run(serve())
    return 0
