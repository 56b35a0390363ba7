"""Pure helpers over shadow state documents (nested JSON objects) for the Thing.

A property sits at a key path in the shadow (`("volume",)` flat, `("kitchen", "volume")` when a
thing's `shadow { kitchen.* in kitchen }` nests it); these helpers build, read, merge and
compare documents along such paths. No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterator
from typing import Any

Path = tuple[str, ...]

# A rejected value is echoed in `reported`; a long or nested one is shortened to stay well
# inside the shadow's size and depth limits.
_ECHO_LIMIT = 64


def nest(path: Path, value: Any) -> dict[str, Any]:
    """`("a", "b"), 1` -> `{"a": {"b": 1}}`."""
    document: Any = value
    for name in reversed(path):
        document = {name: document}
    return document


def lookup(document: dict[str, Any], path: Path) -> tuple[bool, Any]:
    """(found, value) of `path` in `document`."""
    node: Any = document
    for name in path:
        if not isinstance(node, dict) or name not in node:
            return False, None
        node = node[name]
    return True, node


def leaves(
    document: dict[str, Any], keys: Container[Path], parents: Container[Path]
) -> Iterator[tuple]:
    """(path, value) of each entry of a desired/delta document that is one request: a known
    key, or anything that is not an object on the way to one (an unknown or misplaced key)."""
    stack: list[tuple[Path, dict[str, Any]]] = [((), document)]
    while stack:
        prefix, node = stack.pop()
        for name, value in node.items():
            path = (*prefix, name)
            if path not in keys and path in parents and isinstance(value, dict):
                stack.append((path, value))
            else:
                yield path, value


def parents_of(keys: set[Path]) -> set[Path]:
    """Every proper prefix of the key paths: the objects that hold properties."""
    return {path[:i] for path in keys for i in range(1, len(path))}


def same(a: Any, b: Any) -> bool:
    """JSON equality: `true` is not `1`."""
    return type(a) is type(b) and a == b


def echo(value: Any) -> Any:
    """A rejected value as it can be shown in `reported` (scalars as they are)."""
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= _ECHO_LIMIT else text[:_ECHO_LIMIT] + "..."


def merge(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    """`newer` over `older`, object by object (as a shadow update merges)."""
    merged = dict(older)
    for key, value in newer.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def diff(ours: dict[str, Any], theirs: dict[str, Any], owned: str, prune: bool = False) -> dict:
    """What to send so that `theirs` (the shadow's reported) shows `ours`.

    Keys the shadow has and we do not are left alone (an application may report its own),
    except inside the top-level section `owned` (pyiot's status), where they are deleted.
    """
    changes: dict[str, Any] = {}
    for key, value in ours.items():
        current = theirs.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            inner = diff(value, current, owned, prune or key == owned)
            if inner:
                changes[key] = inner
        elif value is None:
            if current is not None:  # null deletes: absent already says "none"
                changes[key] = None
        elif key not in theirs or not same(current, value):
            changes[key] = value
    if prune:
        changes.update({key: None for key in theirs.keys() - ours.keys()})
    return changes


def dotted(path: Path) -> str:
    """A path as users write it: `kitchen.volume`."""
    return ".".join(path)
