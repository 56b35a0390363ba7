"""A legacy component becomes the model a `.iot` file gives; mistakes are found when the Thing
is built, with the method named; `import pyiot` stays light."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pyiot import Component, Thing
from pyiot.compiler import compile_file
from pyiot.legacy.model import LegacyModelError, build_model, name_groups
from pyiot.legacy.protocol import LegacyFramer
from tests.legacy.conftest import DEVICES
from tests.legacy.tv_example import preampComponent


def test_preamp_class_becomes_a_device_model() -> None:
    preamp = preampComponent(name="AVM20", stream="/dev/null")
    model = build_model(preamp)
    device = model.device
    assert device.name == "preampComponent"
    assert list(device.properties) == ["powerState", "input", "volume", "muted"]
    power = device.properties["powerState"]
    assert power.reply.source == "^P1P(?P<value>[0-1])$"  # type: ignore[union-attr]
    assert power.set_format == "P1P{0}\n"
    # The full status fills three properties: a group query, as `query status ... reply`.
    status = device.groups["avmcombinedResponse"]
    assert status.reply.source == (
        r"^P1S(?P<p1>[0-9])V(?P<p2>[+-][0-9]{1,2}[\.][0-9])M(?P<p3>[0-1])D[0-9]E[0-9]$"
    )
    input_ = device.properties["input"]
    assert (input_.group, input_.group_field) == ("avmcombinedResponse", "p1")
    assert input_.reply.source == "^P1S(?P<value>[0-9])$"  # type: ignore[union-attr]
    # The decorated methods are the property's hooks.
    assert model.hooks["input"]["decode"]("6") == "TV"
    assert model.hooks["input"]["encode"]("DVD") == "5"
    assert (device.line_terminator, device.timeout, device.poll_every) == ("\n", 2.0, 5.0)
    # A machine built as a `.iot` device's: an exchange per set, one for queryStatus().
    states = {s["name"] for s in model.table["states"]}
    assert {"offline", "idle", "set-powerState", "set-volume", "query-status"} <= states
    relay = compile_file(DEVICES / "relay.iot")
    triggers = {t["trigger"] for t in model.table["transitions"]}
    assert triggers >= {t["trigger"] for t in relay.machines["Relay"]["transitions"]} - {
        "read-relayState",
        "poll-relayState",
        "write-relayState",
    }


@pytest.mark.parametrize(
    ("regex", "line", "values"),
    [
        (r"^PWR=([0-9]{2})\r?$", "PWR=01\r", ["01"]),
        (r"^[(](\d)[)]$", "(7)", ["7"]),  # parentheses inside a class are no group
        (r"^\((\d)\)$", "(8)", ["8"]),  # nor escaped ones
        (r"^(?:a|b)(\d)(?=z)", "b3z", ["3"]),  # nor non-capturing groups and lookaheads
        (r"^[]x(](\d)$", "(5", ["5"]),  # a ']' first in a class is a literal
        (r"^(?P<zone>\d)-(\d)$", "1-2", ["1", "2"]),  # a named group keeps its name
        ("(?x) ^ (\\d) # comment (not a group)\n - (\\w)", "4-k", ["4", "k"]),
    ],
)
def test_groups_are_named_without_changing_what_matches(regex, line, values) -> None:
    original = re.compile(regex)
    wanted = [f"f{i}" for i in range(len(values))]
    source, fields = name_groups(original, wanted)
    renamed = re.compile(source, original.flags)
    assert [renamed.match(line).group(f) for f in fields] == values  # type: ignore[union-attr]
    assert renamed.match(line).groups() == original.match(line).groups()  # type: ignore[union-attr]


class TwoForOne(Component):
    @Component.componentToProperty(["power", "input"], r"^P(\d)$")
    def toBoth(self, property, value):  # noqa: N802
        return value


def test_a_regex_with_too_few_groups_is_refused_when_the_thing_is_built() -> None:
    with pytest.raises(LegacyModelError, match=r"TwoForOne.toBoth: .* has 1 group\(s\) for 2"):
        Thing(thingName="t", components=TwoForOne(stream="/dev/null"))


class Power(Component):
    @Component.componentToProperty("power", r"^P(\d)$")
    def toPower(self, property, value):  # noqa: N802
        return value


def test_a_property_of_two_components_is_refused() -> None:
    first, second = Power(name="a", stream="/dev/null"), Power(name="b", stream="/dev/null")
    with pytest.raises(ValueError, match="'power' of hall belongs to both a and b"):
        Thing(thingName="hall", components=[first, second])
    with pytest.raises(ValueError, match="thingName"):
        Thing(components=[first])


def test_messages_are_framed_by_eol_and_commands_keep_their_own_ending() -> None:
    epson = LegacyFramer(":")
    assert epson.feed(b"PWR=01\r:") == ["PWR=01\r"]  # as the original passed it on
    assert epson.feed(b":") == [""]  # a bare prompt: done
    assert epson.encode("PWR?\r") == b"PWR?\r"  # ':' is no line ending: never appended
    relay = LegacyFramer("\n")
    assert relay.encode("RELAYON") == b"RELAYON\n"  # the README's format had none
    assert relay.encode("RELAY?\n") == b"RELAY?\n"


def test_import_pyiot_stays_light() -> None:
    code = (
        "import sys, pyiot\n"
        "assert 'pyiot.legacy' not in sys.modules and 'transitions' not in sys.modules\n"
        "from pyiot import Component, Thing\n"
        "assert 'awscrt' not in sys.modules  # the shadow client loads when a thing runs\n"
        "assert {'Component', 'Thing'} <= set(pyiot.__all__)\n"
        "print(Component.__module__, Thing.__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pyiot.legacy.component", "pyiot.legacy.thing"]


class Picky(Component):
    """Patterns RE2 refuses: the original API took any Python regex, and still does."""

    @Component.componentToProperty("state", r"^(?=RELAY)RELAY(ON|OFF)$")
    def toState(self, property, value):  # noqa: N802
        return value == "ON"

    @Component.componentToProperty("echo", r"^(\w)\1(\d)$")
    def toEcho(self, property, value):  # noqa: N802
        return value


def test_python_patterns_of_a_component_keep_python_re() -> None:
    from pyiot.legacy.protocol import LegacyProtocol

    model = build_model(Picky(name="picky", stream="/dev/null"))
    protocol = LegacyProtocol("picky", model, synchronous=False)  # compiles every pattern
    assert protocol.unsolicited("RELAYON") == {"state": True}
    assert protocol.unsolicited("aa7") is not None
