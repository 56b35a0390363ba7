r"""Serve simulated devices on a TCP port or a pseudo-terminal, as one device port.

Every component that shares a port in the `.iot` file shares one simulator port here too (six
amplifier zones on one serial line are one simulator); a line is offered to each component and
the first that recognises it answers.

The port frames what the devices say as the file's `framing` does: with `echo` the received line
comes back first, each reply line ends with the terminator, and a `prompt` ends every answer with
no terminator after it. Epson ESC/VP21 (`framing line "\r" prompt ":"`): `PWR?` -> `PWR=01\r:`.
Monoprice (`framing line "\r" replies "\r\n" prompt "#" echo`): `?11` CR ->
`?11\r\r\n#>1100010000130707100400\r\n#`, as the amplifier sends it: the echo with its CR, a
CR LF and the prompt, then the reply and the prompt again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import tty
from collections.abc import Callable
from secrets import token_hex

from pyiot.lang.login import digest, greeting_groups, secrets_for
from pyiot.lang.model import IotFile, Value
from pyiot.runtime.framing import Framer, PacketFramer, device_framer
from pyiot.runtime.transport import set_nodelay
from pyiot.sim.device import Deferred, DeviceSimulator
from pyiot.sim.patterns import render


class PortSimulator:
    """The device side of one port: its simulated components and its connected clients."""

    def __init__(self, sims: list[DeviceSimulator]):
        if not sims:
            raise ValueError("a simulated port needs at least one component")
        self.sims = {sim.name: sim for sim in sims}
        device = sims[0].device  # components sharing a line share its framing
        self.device = device
        self.terminator = device.reply_ends[0]  # what the device ends its replies with
        counted = device.line_counted
        self._counted_pattern = counted.compile_python() if counted is not None else None
        # Replies with an end of their own (`reply /^AV:.../ end "\r\n"`): a line one of
        # these patterns matches is ended so (the Blackbird ends only its Status lines CR LF).
        self._own_ends: list[tuple[re.Pattern[str], str]] = [
            (regex.compile_python(sim.args), prop.reply_end)
            for sim in sims
            for prop in sim.device.properties.values()
            if prop.reply_end and prop.reply is not None
            for regex in (prop.reply, *prop.reply_then)
        ]
        self.prompt = device.prompt
        self.echo = device.echo
        # A login (PJLink with a password) applies when its secrets are in the environment, as
        # for pyiot's side of the link; a test may set them here before serving.
        login = device.login
        self.secrets = secrets_for(login, sims[0].name) if login is not None else None
        self.url: str | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._client_tasks: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self.unrecognised_lines = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def answer(self, line: str) -> list[str]:
        """The reply lines to one received line: its component's answer, else the error reply.

        An empty line is no command: it gets no reply lines (a prompt device still prompts).
        """
        if not line:
            return []
        for sim in self.sims.values():
            reply = sim.answer(line)
            if reply is not None:
                return reply
        self.unrecognised_lines += 1
        return next(iter(self.sims.values())).error()

    def respond(self, line: str) -> bytes:
        """Everything the device sends back for one received line: echo, reply lines, prompt."""
        earlier = self._due_answers()  # held-back set answers go before this one
        answer = self.answer(line)
        if not self.echo:
            data = b"" if isinstance(answer, Deferred) else self._encode(answer)
        else:
            # The echo is the command with its own terminator, then the reply terminator where
            # it differs, then the prompt; the answer follows with its own prompt. Monoprice:
            # `?11` CR -> `?11\r` `\r\n#` `>1100...\r\n#`.
            echo = line + self.device.line_terminator
            if self.terminator != self.device.line_terminator:
                echo += self.terminator
            data = (echo + (self.prompt or "")).encode("utf-8")
            if answer:
                data += self._encode(answer)
        self._arm_timer()
        return earlier + data

    def _due_answers(self) -> bytes:
        """The set answers held back (`set answered after`) whose time has come, encoded."""
        return b"".join(
            self._encode(lines) for sim in self.sims.values() for lines in sim.due_answers()
        )

    def _encode(self, lines: list[str]) -> bytes:
        framer = device_framer(self.device)
        if isinstance(framer, PacketFramer):
            # A binary protocol: each reply is one frame of its own.
            return b"".join(framer.encode(line) for line in lines)
        text = "".join(self._counted(line) or line + self._line_end(line) for line in lines)
        if self.prompt is not None:
            text += self.prompt
        return text.encode("utf-8")

    def _counted(self, line: str) -> str | None:
        """A reply that says its own length, with that length written and no terminator
        (Rotel `product_type=07,RC-1570`); None for any other line."""
        found = self._counted_pattern.match(line) if self._counted_pattern else None
        if found is None:
            return None
        size = str(len(line) - found.end()).zfill(len(found.group("size")))
        return line[: found.start("size")] + size + line[found.end("size") :]

    def _line_end(self, line: str) -> str:
        """How the device ends this reply line: its reply's own end, else the framing's."""
        for pattern, end in self._own_ends:
            if pattern.search(line):
                return end
        return self.terminator

    def _arm_timer(self) -> None:
        """Wake when a mode timer falls due, so the change is logged then, not when next asked."""
        if self._loop is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        delays = [d for sim in self.sims.values() if (d := sim.next_timer()) is not None]
        self._timer = None
        if any(sim.answers_pending for sim in self.sims.values()):
            # A held-back answer is sent on time even when the device's clock runs faster
            # than the loop's (a test's scaled clock): look again soon.
            delays.append(0.05)
        if delays:
            self._timer = self._loop.call_later(max(min(delays), 0.01), self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        for sim in self.sims.values():
            sim.tick()
        data = self._due_answers()
        if data:
            for writer in list(self._writers):
                writer.write(data)
            self._write_pty(data)
        self._arm_timer()

    def _splitter(self) -> Framer:
        """What splits the received bytes into commands: the runtime's own framing, seen from
        the device's side (`device_framer`)."""
        return device_framer(self.device, self.knows)

    def knows(self, text: str) -> bool:
        """Whether `text` is a whole command of some component on this port."""
        return any(sim.knows(text) for sim in self.sims.values())

    # ------------------------------------------------------------------------------ serving
    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on TCP; return the pyserial URL (`socket://host:port`) to connect to."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._client, host, port)
        bound = self._server.sockets[0].getsockname()
        self.url = f"socket://{bound[0]}:{bound[1]}"
        return self.url

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        set_nodelay(writer.get_extra_info("socket"))
        self._writers.add(writer)
        expected = None  # the digest the first command must start with (a login)
        if self.device.login is not None and self.secrets is not None:
            greeting, expected = self._login_greeting()
            writer.write(greeting.encode("latin-1", errors="replace"))
        elif self.device.greeting is not None:
            # What the device says when a connection opens (PJLink `PJLINK 0`, a prompt).
            writer.write(self.device.greeting.encode("latin-1", errors="replace"))
        task = asyncio.current_task()
        if task is not None:
            self._client_tasks.add(task)
        lines = self._splitter()
        try:
            while data := await reader.read(4096):
                for line in lines.feed(data):
                    if not isinstance(line, str):  # commands hold no prompt
                        continue
                    if expected is not None:
                        if not line.startswith(expected):
                            # A wrong or missing digest: the device says so and hangs up.
                            refused = self.device.login.refused  # type: ignore[union-attr]
                            if refused is not None:
                                writer.write((refused + self.terminator).encode("latin-1"))
                            await writer.drain()
                            return
                        line, expected = line[len(expected) :], None
                    writer.write(self.respond(line))
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            self._client_tasks.discard(task)
            writer.close()

    def _login_greeting(self) -> tuple[str, str]:
        """A fresh greeting (its random text new for each connection) and the digest it asks."""
        login = self.device.login
        assert login is not None and self.secrets is not None
        pattern = login.greeting.compile_python()
        groups = {name: token_hex(4) for name in pattern.groupindex}
        text = render(pattern, groups)
        taken = greeting_groups(login, text)
        if taken is None:  # the greeting's random is not hex: its first allowed text then
            text = render(pattern, {})
            taken = greeting_groups(login, text)
        return text + self.terminator, digest(login, taken or {}, self.secrets)

    async def serve_pty(self) -> str:
        """Open a pseudo-terminal; return the path of its device end (`/dev/pts/N`)."""
        master, slave = os.openpty()
        # Raw mode: no echo and no line editing, like a real serial line.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        lines = self._splitter()

        def readable() -> None:
            try:
                data = os.read(master, 4096)
            except OSError:  # no client has the port open: nothing to read yet
                return
            for line in lines.feed(data):
                if isinstance(line, str):  # commands hold no prompt
                    self._write_pty(self.respond(line))

        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, readable)
        self.url = os.ttyname(slave)
        return self.url

    def _write_pty(self, data: bytes) -> None:
        if self._master is not None and data:
            with contextlib.suppress(OSError):
                os.write(self._master, data)

    def announce(self, lines: list[str]) -> None:
        """Send unsolicited lines to every connected client (ended by the prompt, as any reply)."""
        if not lines:
            return
        data = self._encode(lines)
        for writer in list(self._writers):
            writer.write(data)
        self._write_pty(data)

    def change(self, component: str, prop: str, value: object) -> None:
        """A change at the device itself, announced on the line as the device would."""
        self.announce(self.sims[component].change(prop, value))
        self._arm_timer()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            # Let each client handler see its closed stream and finish: left pending, it is
            # cancelled when the loop ends and asyncio logs "Exception in callback" (3.11).
            if self._client_tasks:
                await asyncio.wait(set(self._client_tasks), timeout=1.0)
            await self._server.wait_closed()
            self._server = None
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            self._master = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None


def port_groups(model: IotFile) -> dict[tuple[str, str, str], list[tuple[str, str, dict]]]:
    """Components grouped by the port they sit on: (thing, kind, address) -> components.

    A file without things gets one group per device, named after the device.
    """
    groups: dict[tuple[str, str, str], list[tuple[str, str, dict[str, Value]]]] = {}
    for thing in model.things.values():
        for comp in thing.components.values():
            key = (thing.name, comp.endpoint_kind, comp.endpoint)
            groups.setdefault(key, []).append((comp.name, comp.device, comp.args))
    if not model.things:
        for name in model.devices:
            groups[("", "serial", name)] = [(name, name, {})]
    return groups


def simulator_for(
    model: IotFile,
    component: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PortSimulator:
    """The simulator of the port `component` sits on (the only port when None).

    `clock` gives the devices' time (seconds, monotonic): a test passes its own to move a
    projector through its warm-up at once.

    Raises `LookupError` with a message for the user when the choice is ambiguous or unknown.
    """
    groups = port_groups(model)
    if component is None:
        if len(groups) != 1:
            names = ", ".join(c[0] for comps in groups.values() for c in comps)
            raise LookupError(f"the file has several ports; pick one with --component ({names})")
        chosen = next(iter(groups.values()))
    else:
        matches = [comps for comps in groups.values() if component in (c[0] for c in comps)]
        if not matches:
            names = ", ".join(c[0] for comps in groups.values() for c in comps)
            raise LookupError(f"no component {component!r} (known: {names})")
        chosen = matches[0]
    return PortSimulator(
        [DeviceSimulator(name, model.devices[device], args, clock) for name, device, args in chosen]
    )


def device_options(model: IotFile, components: list[str], url: str) -> list[str]:
    """The `pyiot run` options that point every one of `components` (one simulated port) at
    `url`: `--device PORT=URL` when they are exactly the users of one declared `port`, else one
    `--device NAME=URL` per component. Pointing one zone of six at the simulator would leave
    the other five on the file's serial port, failing.

    A name that several things use is given as THING.NAME, as `pyiot run` requires.
    """
    taken: dict[str, int] = {}
    for thing in model.things.values():
        for name in {*thing.components, *thing.ports}:
            taken[name] = taken.get(name, 0) + 1
    for thing in model.things.values():
        if not set(components) <= set(thing.components):
            continue

        def qualified(name: str, thing_name: str = thing.name) -> str:
            return f"{thing_name}.{name}" if taken.get(name, 0) > 1 else name

        ports = {thing.components[name].port for name in components}
        port = ports.pop() if len(ports) == 1 else None
        if port is not None:
            users = [c.name for c in thing.components.values() if c.port == port]
            if sorted(users) == sorted(components):
                return [f"--device {qualified(port)}={url}"]
        return [f"--device {qualified(name)}={url}" for name in components]
    return [f"--device {name}={url}" for name in components]
