"""Device parameters in reply patterns: each zone on a shared line hears only its replies."""

from __future__ import annotations

from pyiot.lang import load
from pyiot.lang.model import Regex
from pyiot.sim import DeviceSimulator

ZONE = r"""
device Zone(zone: int) {
    framing line "\r\n"
    property volume: int 0..38 {
        query "?{zone}"
        reply /^>(?P<zone>{zone})(?P<value>\d\d)$/
        set   "<{zone}VO{value:02d}"
    }
}
"""


def test_parameter_in_a_reply_pattern_matches_only_that_instance() -> None:
    pattern = Regex(r"^>(?P<zone>{zone})(?P<value>\d{2})$").compile({"zone": 11})
    assert pattern.match(">1107")["value"] == "07"
    assert pattern.match(">1207") is None
    # Quantifiers and names that are not parameters stay as written.
    assert Regex(r"^{other}\d{2}$").compile({"zone": 11}).pattern == r"^{other}\d{2}$"


def test_simulated_zones_answer_for_themselves() -> None:
    device = load(ZONE, "zone.iot").devices["Zone"]
    kitchen = DeviceSimulator("kitchen", device, {"zone": 11})
    patio = DeviceSimulator("patio", device, {"zone": 12})
    assert kitchen.answer("<11VO07") == [">1107"]
    assert patio.answer("<11VO07") is None
    assert patio.answer("?12") == [">1200"]
    assert kitchen.answer("?11") == [">1107"]
