"""Validate discovery payloads with Home Assistant's own MQTT schemas (run by HA's Python).

Reads `[[platform, payload], ...]` as JSON on stdin and prints `{"errors": [...]}`: for each
payload, what Home Assistant's discovery does with it (abbreviations expanded, the origin
checked, the platform's DISCOVERY_SCHEMA applied), and, stricter than Home Assistant, every key
it silently drops (DISCOVERY_SCHEMA removes unknown keys, so a misspelt option would pass).
This file imports `homeassistant`: it runs only under the Python that has it (see
test_discovery_schema.py), never under pytest's own.
"""

from __future__ import annotations

import importlib
import json
import sys

from homeassistant.components.mqtt.discovery import _replace_all_abbreviations
from homeassistant.components.mqtt.schemas import MQTT_ORIGIN_INFO_SCHEMA


def check(platform: str, payload: dict) -> list[str]:
    errors = []
    payload = json.loads(json.dumps(payload))
    _replace_all_abbreviations(payload)
    if "origin" in payload:
        try:
            MQTT_ORIGIN_INFO_SCHEMA(payload["origin"])
        except Exception as err:  # noqa: BLE001 - any failure is the finding
            errors.append(f"origin: {err}")
    module = importlib.import_module(f"homeassistant.components.mqtt.{platform}")
    try:
        config = module.DISCOVERY_SCHEMA(dict(payload))
    except Exception as err:  # noqa: BLE001
        return [*errors, f"{platform}: {err}"]
    dropped = sorted(set(payload) - set(config) - {"origin"})
    if dropped:
        errors.append(f"{platform}: keys Home Assistant ignores: {dropped}")
    for key in ("device",):
        if key in payload:
            lost = sorted(set(payload[key]) - set(config.get(key, {})))
            if lost:
                errors.append(f"{platform}: device keys Home Assistant ignores: {lost}")
    return errors


def main() -> None:
    items = json.load(sys.stdin)
    report = []
    for platform, payload in items:
        for error in check(platform, payload):
            report.append(f"{payload.get('unique_id')}: {error}")
    import homeassistant.const

    json.dump({"errors": report, "version": homeassistant.const.__version__}, sys.stdout)


if __name__ == "__main__":
    main()
