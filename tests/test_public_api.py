"""Each package's public surface is its `__all__`, and every name in it imports."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = [
    "pyiot",
    "pyiot.lang",
    "pyiot.compiler",
    "pyiot.runtime",
    "pyiot.local",
    "pyiot.sim",
    "pyiot.legacy",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_name_in_all_imports(name: str):
    package = importlib.import_module(name)
    public = package.__all__
    assert public and len(set(public)) == len(public)
    missing = [item for item in public if getattr(package, item, None) is None]
    assert missing == []
    namespace: dict = {}
    exec(f"from {name} import *", namespace)
    assert set(public) <= set(namespace)


def test_importing_pyiot_and_its_runtime_stays_light():
    # The runtime's names load on use: awscrt (slow) is not imported by `import pyiot.runtime`.
    code = "import sys, pyiot, pyiot.runtime; print('awscrt' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
