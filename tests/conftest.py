"""Fixtures every test folder shares."""

from __future__ import annotations

import pytest

from pyiot.local.mosquitto import MosquittoNotFound, find_mosquitto


@pytest.fixture(scope="session")
def mosquitto_path() -> str:
    """The mosquitto binary; tests that need the real broker skip where it is missing."""
    try:
        return find_mosquitto()
    except MosquittoNotFound as exc:
        pytest.skip(str(exc))
