"""pyiot: put serial and TCP devices on AWS IoT Core (or a local broker) from a `.iot` file."""

__version__ = "0.1.0"

__all__ = ["__version__"]
