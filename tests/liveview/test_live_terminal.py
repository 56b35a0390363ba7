"""`pyiot run` in a real terminal (tmux), as a person sees it: the live table appears and
follows a change made with `pyiot shadow set`; Ctrl-C ends it cleanly."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyiot.local import LocalStack
from tests.e2e.conftest import RELAY, ROOT, clean_environment, pyiot_command, run_pyiot
from tests.waiting import PATIENCE

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


class Pane:
    """A detached tmux session on a private server socket, running one command."""

    def __init__(self, command: list[str], width: int = 140, height: int = 40):
        self.server = f"pyiot-test-{uuid.uuid4().hex[:8]}"
        # The shell stays after the command so its exit status can be read off the screen.
        script = f"{shlex.join(command)}; echo EXITED $?; sleep 30"
        size = ("-x", str(width), "-y", str(height))
        self._tmux("new-session", "-d", *size, "-c", str(ROOT), script)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.server, *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            env=clean_environment(),
        ).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p")

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = PATIENCE) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"the screen never showed {what}:\n{self.screen()}")

    def press(self, *keys: str) -> None:
        self._tmux("send-keys", *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(port=None, data_dir=tmp_path / "data") as running:
        yield running


def relay_row(screen: str) -> str:
    return next(line for line in screen.splitlines() if "│ relay1 " in line)


def test_live_table_follows_a_shadow_change(stack: LocalStack) -> None:
    pane = Pane(pyiot_command("run", str(RELAY), "--simulate", "--broker", stack.url))
    try:
        screen = pane.wait_for(
            lambda s: "│ relay1 " in s and "relayState = false" in relay_row(s), "the table"
        )
        assert "1/1 components online" in screen
        header = next(line for line in screen.splitlines() if "thing" in line and "┃" in line)
        for column in ("component", "state", "online", "properties", "last error"):
            assert column in header
        cells = [cell.strip() for cell in relay_row(screen).split("│")[1:-1]]
        assert cells == ["relayOne", "relay1", "idle", "online", "relayState = false", "-"]
        # The run's own lines still print, above the table.
        assert "ready; try: pyiot shadow get relayOne" in screen

        result = run_pyiot("shadow", "set", "relayOne", "relayState=true", "--broker", stack.url)
        assert result.returncode == 0, result.stderr
        screen = pane.wait_for(
            lambda s: "relayState = true" in relay_row(s), "relayState = true in the table"
        )
        assert "simulator: relay1.relayState = true" in screen
        assert screen.count("│ relay1 ") == 1  # redrawn in place, not printed again

        pane.press("C-c")
        pane.wait_for(lambda s: "EXITED 0" in s, "a clean exit after Ctrl-C")
    finally:
        pane.close()


def test_six_zones_fit_an_80_by_24_terminal_with_iso_log_times(stack: LocalStack) -> None:
    """The six Monoprice zones in the classic terminal size: every zone on show, one line
    each, and a log record's time in ISO 8601."""
    monoprice = ROOT / "devices" / "monoprice_mpr6zhmaut.iot"
    pane = Pane(
        pyiot_command("run", str(monoprice), "--simulate", "--broker", stack.url), 80, 24
    )
    try:
        screen = pane.wait_for(lambda s: "6/6 components online" in s, "six zones online")
        for zone in ("kitchen", "dining", "living", "patio", "master", "office"):
            rows = [line for line in screen.splitlines() if line.startswith(f"│ {zone} ")]
            assert len(rows) == 1, screen
            assert "online" in rows[0] and "power=" in rows[0], screen
        result = run_pyiot(
            "shadow", "set", "wholeHouse", "kitchen.volume=99", "--broker", stack.url
        )
        assert result.returncode == 0, result.stderr
        screen = pane.wait_for(lambda s: "rejected desired" in s, "the rejection logged")
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", screen), screen
        assert not re.search(r"\[\d\d/\d\d/\d\d ", screen), screen
        pane.press("C-c")
        pane.wait_for(lambda s: "EXITED 0" in s, "a clean exit after Ctrl-C")
    finally:
        pane.close()
