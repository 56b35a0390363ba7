"""The runtime: transports, framing, component engines, things and the shadow client."""
