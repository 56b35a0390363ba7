"""Tests of pyiot.local: real mosquitto, real MQTT clients."""
