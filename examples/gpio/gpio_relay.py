"""A relay on a Raspberry Pi GPIO pin, as a pyiot custom transport.

pyiot drives devices by their line protocol; a relay wired to a GPIO pin has none, so this link
speaks one on the pin's behalf: the same protocol as the serial relay of devices/relay.iot.

    RELAYON  -> switches the relay on,  answers RELAYON
    RELAYOFF -> switches the relay off, answers RELAYOFF
    RELAY?   -> answers RELAYON or RELAYOFF
    other    -> answers ERR

With a `button` pin, each press toggles the relay and is announced as an unsolicited
`RELAYON`/`RELAYOFF` line, as a relay board with a front-panel button would; pyiot reports it
to the shadow like any device-side change.

gpiozero calls `when_pressed` on its own thread. Nothing here touches the asyncio loop from
that thread: the press is handed to the loop with `loop.call_soon_threadsafe`, and the relay is
only switched, and lines only queued, on the loop. GPIO writes are register writes (no waiting),
so they run on the loop directly.

The `.iot` file's `transport custom { ... }` settings arrive as keyword arguments:

    transport custom { pin 17 button 27 }

Without a Pi (tests, a laptop) use gpiozero's mock pins: `GPIOZERO_PIN_FACTORY=mock`.
"""

from __future__ import annotations

import asyncio
import contextlib

from gpiozero import Button, OutputDevice

_ON, _OFF = "RELAYON", "RELAYOFF"


class GpioRelayLink:
    """The `Link` pyiot needs (async open/read/write/close) over a gpiozero relay and button.

    Settings (from the device's `transport custom { ... }` block):

    - `pin`: the BCM pin number the relay (its driver transistor or module input) is on.
    - `button`: optional BCM pin of a push button to ground; a press toggles the relay.
    - `active_high`: `false` for the many relay modules that switch on a low input.
    - `initial`: the relay's state when the link opens (default off).
    - `bounce`: the button's debounce time, e.g. `bounce 50ms` (default none).
    """

    def __init__(
        self,
        pin: int,
        button: int | None = None,
        active_high: bool = True,
        initial: bool = False,
        bounce: float | None = None,
        **unknown: object,
    ):
        if unknown:
            # A typo in the .iot file's settings: say so in one line, not with a TypeError.
            raise ValueError(
                f"gpio relay: unknown transport setting {', '.join(sorted(unknown))} "
                "(known: pin, button, active_high, initial, bounce)"
            )
        if not isinstance(pin, int) or isinstance(pin, bool):
            raise ValueError(f"gpio relay: `pin` is a GPIO number, got {pin!r}")
        if button is not None and (not isinstance(button, int) or isinstance(button, bool)):
            raise ValueError(f"gpio relay: `button` is a GPIO number, got {button!r}")
        self.pin = pin
        self.button_pin = button
        self.active_high = active_high
        self.initial = initial
        self.bounce = bounce
        self.url = f"gpio:{pin}" + (f" (button gpio:{button})" if button is not None else "")
        self._relay: OutputDevice | None = None
        self._button: Button | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lines: asyncio.Queue[bytes] = asyncio.Queue()
        self._received = b""

    # ------------------------------------------------------------------------------ Link
    async def open(self) -> None:
        """Claim the pins. A pin in use (another program, a second link) raises: pyiot keeps
        the component offline and retries, as for an unplugged serial adapter."""
        self._loop = asyncio.get_running_loop()
        self._lines = asyncio.Queue()
        self._received = b""
        self._relay = OutputDevice(
            self.pin, active_high=self.active_high, initial_value=self.initial
        )
        if self.button_pin is not None:
            try:
                self._button = Button(self.button_pin, bounce_time=self.bounce)
            except Exception:
                self._relay.close()
                self._relay = None
                raise
            self._button.when_pressed = self._pressed

    async def read(self) -> bytes:
        """The next line the "device" says: an answer, or a button press's announcement."""
        return await self._lines.get()

    async def write(self, data: bytes) -> None:
        """Act on each complete command line and queue its answer."""
        self._received += data
        while b"\n" in self._received:
            raw, self._received = self._received.split(b"\n", 1)
            self._answer(self._command(raw.decode("ascii", "replace").strip()))

    async def close(self) -> None:
        """Release the pins. The relay pin becomes an input again: what the relay does then is
        up to its wiring (a pull-down resistor keeps it off)."""
        button, self._button = self._button, None
        relay, self._relay = self._relay, None
        for device in (button, relay):
            if device is not None:
                with contextlib.suppress(Exception):
                    device.close()

    # --------------------------------------------------------------------------- protocol
    def _command(self, line: str) -> str:
        relay = self._relay
        if relay is None:
            return "ERR"
        if line == _ON:
            relay.on()
        elif line == _OFF:
            relay.off()
        elif line != "RELAY?":
            return "ERR"
        return self._state()

    def _state(self) -> str:
        assert self._relay is not None
        return _ON if self._relay.is_active else _OFF

    def _answer(self, line: str) -> None:
        self._lines.put_nowait(line.encode("ascii") + b"\n")

    # ----------------------------------------------------------------------------- button
    def _pressed(self) -> None:
        """gpiozero's thread: hand the press to the loop, touch nothing else."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: pyiot is stopping
                loop.call_soon_threadsafe(self._toggle)

    def _toggle(self) -> None:
        """On the loop: switch the relay and announce its new state, unasked."""
        if self._relay is None:
            return  # closed between the press and now
        self._relay.toggle()
        self._answer(self._state())
