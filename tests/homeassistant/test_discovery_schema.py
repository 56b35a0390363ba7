"""Every discovery payload pyiot publishes passes Home Assistant's own MQTT discovery schemas.

Home Assistant 2025.4 needs Python 3.13, newer than pytest's may be: the payloads are checked
in a subprocess by the Python that has `homeassistant` installed (ha_schema_check.py), found as
$PYIOT_HA_PYTHON or `.ha-venv/bin/python` in the repository (`.ci/run` makes it). Outside CI,
without it, the test skips and says how to get it; in CI (CI=true) it must run.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.homeassistant.conftest import EVERYTHING, HERE, ROOT, entities_of, ha_python


def check_with_home_assistant(payloads: list[list]) -> dict:
    result = subprocess.run(
        [ha_python(), str(HERE / "ha_schema_check.py")],
        input=json.dumps(payloads),
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.timeout(300)
def test_every_payload_of_every_file_passes_home_assistants_schema() -> None:
    files = [*sorted((ROOT / "devices").glob("*.iot")), EVERYTHING]
    entities = [entity for path in files for entity in entities_of(path)]
    platforms = {entity.platform for entity in entities}
    # Every platform of the mapping table is among them.
    assert platforms == {"switch", "binary_sensor", "select", "sensor", "number", "button", "text"}
    report = check_with_home_assistant([[e.platform, e.config] for e in entities])
    assert report["version"].startswith("2025.4")
    assert report["errors"] == []


@pytest.mark.timeout(300)
def test_the_checker_catches_what_home_assistant_would_refuse_or_ignore() -> None:
    """The check itself works: a misspelt key, a bad range, a bad device key are all found."""
    bad = [
        ["switch", {"unique_id": "a", "command_topic": "x/set", "stat_topic": "x"}],
        ["number", {"unique_id": "b", "command_topic": "x/set", "min": 5, "max": 1}],
        ["switch", {"unique_id": "c", "command_topic": "x/set", "device": {"via_devic": "d"}}],
    ]
    errors = check_with_home_assistant(bad)["errors"]
    assert len(errors) == 3, errors
    assert "stat_topic" in errors[0] and "max must be >= min" in errors[1]
    assert "via_devic" in errors[2]
