"""`import "file.iot"`: devices from another file, with positions in the right file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyiot.lang import IotError, load, load_file

AMP = """
device Amp(zone: int) {
    property volume: int 0..38 { query "?{zone}" reply /^>(?P<value>\\d\\d)$/ }
}
"""


def test_imported_devices_serve_things(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "amp.iot").write_text(AMP)
    house = tmp_path / "house.iot"
    house.write_text(
        'import "lib/amp.iot"\nthing house { component kitchen: Amp(zone = 11) on bus_missing }\n'.replace(
            "on bus_missing", 'on serial "/dev/ttyUSB0"'
        )
    )
    model = load_file(house)
    assert "Amp" in model.devices
    assert model.devices["Amp"].pos.file.endswith("amp.iot")
    assert model.things["house"].components["kitchen"].args == {"zone": 11}


def test_missing_import_points_at_the_import(tmp_path: Path) -> None:
    house = tmp_path / "house.iot"
    house.write_text('\nimport "nowhere.iot"\n')
    with pytest.raises(IotError) as caught:
        load_file(house)
    assert (caught.value.line, caught.value.column) == (2, 8)
    assert "cannot import 'nowhere.iot'" in caught.value.diagnostics[0].message


def test_a_device_declared_in_two_files_is_an_error_in_the_imported_one(tmp_path: Path) -> None:
    (tmp_path / "amp.iot").write_text(AMP)
    house = tmp_path / "house.iot"
    house.write_text('import "amp.iot"\n' + AMP)
    with pytest.raises(IotError) as caught:
        load_file(house)
    first = caught.value.diagnostics[0]
    assert first.pos.file.endswith("amp.iot") and "also declared in" in first.message
    rendered = caught.value.render()
    assert "device Amp(zone: int) {" in rendered  # the imported file's own line is shown


def test_import_cycles_are_harmless(tmp_path: Path) -> None:
    (tmp_path / "a.iot").write_text('import "b.iot"\n' + AMP)
    (tmp_path / "b.iot").write_text('import "a.iot"\n')
    assert "Amp" in load_file(tmp_path / "a.iot").devices


@pytest.mark.parametrize(
    ("source", "hint"),
    [
        ("device D { property p { } }", "a property or parameter needs a type"),
        ("device D { property p: bool { map { ON true } } }", "a map entry is `WIRE = VALUE`"),
        ("thing t { component c: D }", "a component needs its device and where it is"),
        ('thing t { component c: D on usb "x" }', "unknown transport 'usb'"),
    ],
)
def test_common_mistakes_get_a_sentence(source: str, hint: str) -> None:
    with pytest.raises(IotError) as caught:
        load(source, "x.iot")
    assert hint in caught.value.diagnostics[0].message
