"""The GPIO relay example (examples/gpio) on gpiozero's mock pins: no Raspberry Pi here, and
the mock pin factory is the one stand-in these tests accept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

gpiozero = pytest.importorskip("gpiozero")
from gpiozero import Device  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402

from pyiot.compiler import Program, compile_file  # noqa: E402
from pyiot.local import LocalStack, MosquittoNotFound  # noqa: E402
from pyiot.local.mosquitto import find_mosquitto  # noqa: E402
from tests.e2e.conftest import cli, shadow_app  # noqa: E402,F401  (fixtures)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gpio"
GPIO_RELAY = EXAMPLE / "gpio_relay.iot"
RELAY_PIN, BUTTON_PIN = 17, 27  # as examples/gpio/gpio_relay.iot wires them


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    """Mock pins for this test; pins a test leaves claimed are released after it."""
    previous = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = previous


@pytest.fixture(scope="session")
def gpio_program() -> Program:
    return compile_file(GPIO_RELAY)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The real local broker and shadow service, on a free port."""
    try:
        find_mosquitto()
    except MosquittoNotFound as err:
        pytest.skip(str(err))
    with LocalStack(port=None, data_dir=tmp_path_factory.mktemp("stack")) as running:
        yield running
