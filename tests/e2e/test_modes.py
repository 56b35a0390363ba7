"""Device modes through `pyiot run`: a change that must wait for the warm-up waits, then lands."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, desired, reported

pytestmark = pytest.mark.timeout(90)


def test_power_and_source_in_one_update_wait_for_the_warm_up(cli, shadow_app, tmp_path) -> None:
    # The shipped Epson file with a short warm-up, so the test takes a second, not 40.
    source = (ROOT / "devices" / "epson_escvp21.iot").read_text().replace("after 40s", "after 1s")
    projector = tmp_path / "epson.iot"
    projector.write_text(source)
    run = cli("run", str(projector), "--simulate", "--data", str(tmp_path / "data"))
    broker = run.wait_for(r"local broker: (mqtt://\S+)").group(1)
    run.wait_for(r"^ready")
    app = shadow_app(broker, "theatre")
    app.set_desired(power="on", source="hdmi2")
    # Power first: the projector warms up, and the shadow says so.
    app.wait_until(lambda d: reported(d).get("power") == "warming")
    # The source change is held, not refused, and goes out once the lamp is on.
    doc = app.wait_until(lambda d: reported(d).get("source") == "hdmi2")
    assert reported(doc).get("power") == "on"
    assert "rejected" not in reported(doc).get("pyiot", {})
    app.wait_until(lambda d: not desired(d))
    run.wait_for(r"simulator: projector\.source = hdmi2")
    assert not any("refused" in line for line in run.lines)


def test_a_device_file_that_asks_for_python_needs_permission(cli, tmp_path: Path) -> None:
    hook = tmp_path / "myhooks.py"
    hook.write_text("def double(text):\n    return int(text) * 2\n")
    device = tmp_path / "counter.iot"
    device.write_text(
        'device Counter { property count: int { query "C?" reply /^C(?P<value>\\d+)$/ '
        'python decode "myhooks:double" } }\n'
        'thing counterThing { component counter: Counter on serial "/dev/null" }\n'
    )
    refused = cli("run", str(device), "--simulate", "--data", str(tmp_path / "data"))
    refused.wait_for(r"runs Python \(myhooks:double\); run with --allow-python")
    assert refused.process.wait(timeout=30) == 1
    allowed = cli(
        "run", str(device), "--simulate", "--allow-python", "--data", str(tmp_path / "data")
    )
    allowed.wait_for(r"^ready")
