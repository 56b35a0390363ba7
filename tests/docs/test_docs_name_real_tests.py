"""The docs prove their promises by naming tests: every named test must exist.

docs/runtime.md's "Faults and limits" and docs/devices.md's tables cite tests as
`tests/dir/test_file.py::test_name` (or `test_file.py::test_name` for a file under tests/devices,
and `::test_name` for another test of the file named just before). A renamed or deleted test
would leave a promise without its proof; this finds it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md"])
CITATION = re.compile(r"(?:(tests/[\w/]+\.py)|\b(test_\w+\.py))?::(test_\w+)")


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    }


def citations(doc: Path) -> list[tuple[int, Path, str]]:
    """Every (line, file, test) a document cites; a bare `::name` refers to the last file."""
    found = []
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        last: Path | None = None
        for full, short, name in CITATION.findall(line):
            if full:
                last = ROOT / full
            elif short:
                matches = sorted((ROOT / "tests").rglob(short))
                last = matches[0] if matches else ROOT / "tests" / "devices" / short
            if last is not None:
                found.append((number, last, name))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_cited_test_exists(doc: Path) -> None:
    missing = [
        f"{doc.name}:{number}: {path.relative_to(ROOT)}::{name}"
        for number, path, name in citations(doc)
        if not path.exists() or name not in defined_tests(path)
    ]
    assert not missing, "docs cite tests that do not exist:\n" + "\n".join(missing)
