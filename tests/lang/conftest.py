"""Fixtures for the language tests: the shipped relay file and the bad-file folder."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def relay_path() -> Path:
    return ROOT / "devices" / "relay.iot"


@pytest.fixture(scope="session")
def relay_source(relay_path: Path) -> str:
    return relay_path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def bad_dir() -> Path:
    return Path(__file__).resolve().parent / "bad"
