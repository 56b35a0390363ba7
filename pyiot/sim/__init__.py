"""The simulator: virtual devices generated from the same `.iot` file the runtime reads."""

from pyiot.sim.device import DeviceSimulator
from pyiot.sim.server import PortSimulator, port_groups, simulator_for

__all__ = ["DeviceSimulator", "PortSimulator", "port_groups", "simulator_for"]
