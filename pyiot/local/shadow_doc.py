"""AWS IoT Device Shadow document semantics, as pure functions (no I/O, no clock).

Follows the AWS IoT developer guide pages "Device Shadow service documents",
"Device Shadow MQTT topics", "Interacting with shadows" and "Device Shadow error messages":

* an update merges ``state.desired`` / ``state.reported`` into the stored document; a ``null``
  value deletes a key, ``"desired": null`` deletes the section and ``"state": null`` both;
* nested objects merge key by key, arrays are values (replaced whole, no ``null`` inside);
* ``metadata`` mirrors the state with ``{"timestamp": epoch}`` per leaf (per element in arrays);
* the delta holds the ``desired`` fields that differ from ``reported``, nested objects compared
  recursively keeping the full path, with the ``desired`` metadata of those fields;
* ``version`` increases by one on each accepted update and an update carrying a ``version``
  that is not the current one is a 409; a deleted shadow keeps its version for re-creation;
* the documented 400/404/409/413/415 errors and limits (8 KB of state, 6 levels of nesting,
  64-byte client token, thing/shadow name syntax).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from pyiot.errors import PyiotError

JsonObject = dict[str, Any]

MAX_STATE_BYTES = 8 * 1024
MAX_DEPTH = 6
MAX_CLIENT_TOKEN_BYTES = 64
#: An MQTT message to AWS IoT is at most 128 KB; larger ones are refused before parsing.
MAX_PAYLOAD_BYTES = 128 * 1024
_SECTIONS = ("desired", "reported")
_THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
_SHADOW_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,64}")


def json_copy(value: Any) -> Any:
    """A copy of a JSON value (dicts, lists and scalars), deep enough that changing it leaves
    the original alone. A shadow's sections, metadata and patches are such trees: copying
    them by kind is several times faster than `copy.deepcopy` (which was half of the time
    the service took to answer an update)."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value  # str, int, float, bool, None: immutable


class ShadowError(PyiotError):
    """A request the Device Shadow service rejects, with its HTTP-style code."""

    what = "shadow request rejected"

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message

    def payload(self, now: int, client_token: str | None = None) -> JsonObject:
        """The error response document published on ``.../rejected``."""
        body: JsonObject = {"code": self.code, "message": self.message, "timestamp": now}
        if client_token is not None:
            body["clientToken"] = client_token
        return body


def validate_thing_name(name: str) -> None:
    if not _THING_NAME.fullmatch(name):
        raise ShadowError(400, "Invalid thing name")


def validate_shadow_name(name: str | None) -> None:
    if name is not None and not _SHADOW_NAME.fullmatch(name):
        raise ShadowError(400, "Invalid shadow name")


def not_found(thing: str, shadow_name: str | None) -> ShadowError:
    return ShadowError(404, f"No shadow exists with name: '{shadow_name or thing}'")


# -- request parsing ---------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    # `1e400` is valid JSON syntax but no finite number: Python reads it as inf, which would
    # be stored and published as `Infinity`, which is not JSON at all.
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of range")
    return number


def too_deep() -> ShadowError:
    return ShadowError(400, f"JSON contains too many levels of nesting; maximum is {MAX_DEPTH}")


def parse_json(payload: bytes) -> Any:
    """Decode an MQTT payload as UTF-8 JSON, raising the documented errors.

    Besides syntax, a number out of the finite range (`1e400`) and a lone surrogate escape
    (`"\\ud800"`, no Unicode character) are `400 Invalid JSON`; nesting deeper than the
    parser goes is the documented nesting error, answered at once.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ShadowError(413, "The payload exceeds the maximum size allowed")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ShadowError(
            415, "Unsupported documented encoding; supported encoding is UTF-8"
        ) from None
    try:
        document = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except ValueError:
        raise ShadowError(400, "Invalid JSON") from None
    except RecursionError:
        raise too_deep() from None
    if not _valid_text(document):
        raise ShadowError(400, "Invalid JSON")
    return document


def _valid_text(document: Any) -> bool:
    """False when a string or key holds a lone surrogate (it has no UTF-8 form)."""
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            strings: Any = (node,)
        elif isinstance(node, dict):
            strings = node.keys()
            stack.extend(node.values())
        elif isinstance(node, list):
            strings = ()
            stack.extend(node)
        else:
            continue
        for text in strings:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def client_token_of(request: Any) -> str | None:
    """The request's ``clientToken`` when it is a string (echoed even when invalid)."""
    if isinstance(request, dict):
        token = request.get("clientToken")
        if isinstance(token, str):
            return token
    return None


def lenient_client_token(payload: bytes) -> str | None:
    """``clientToken`` of a get/delete request, whose body is otherwise ignored."""
    if not payload.strip():
        return None
    try:
        return client_token_of(json.loads(payload.decode("utf-8")))
    except (ValueError, RecursionError):  # ValueError includes UnicodeDecodeError
        return None


def check_client_token(request: JsonObject) -> None:
    if "clientToken" not in request:
        return
    token = request["clientToken"]
    if not isinstance(token, str) or len(token.encode("utf-8")) > MAX_CLIENT_TOKEN_BYTES:
        raise ShadowError(400, "Invalid clientToken")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` levels (objects and arrays each count one).

    Walks no deeper than `limit + 1`, so a document of any depth costs no deep recursion.
    """
    if not isinstance(value, (dict, list)):
        return False
    if limit == 0:
        return True
    children = value.values() if isinstance(value, dict) else value
    return any(_deeper_than(child, limit - 1) for child in children)


def _has_null_in_array(value: Any, in_array: bool = False) -> bool:
    if value is None:
        return in_array
    if isinstance(value, dict):
        return any(_has_null_in_array(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null_in_array(v, True) for v in value)
    return False


def validate_update(request: Any) -> None:
    """Raise :class:`ShadowError` unless ``request`` is a well-formed update request."""
    if not isinstance(request, dict):
        raise ShadowError(400, "Invalid JSON")
    check_client_token(request)
    version = request.get("version")
    if "version" in request and (not isinstance(version, int) or isinstance(version, bool)):
        raise ShadowError(400, "Invalid version")
    if "state" not in request:
        raise ShadowError(400, "Missing required node: state")
    state = request["state"]
    if state is None:
        return
    if not isinstance(state, dict):
        raise ShadowError(400, "State node must be an object")
    for key in state:
        if key not in _SECTIONS:
            raise ShadowError(400, "State contains an invalid node")
    for section in _SECTIONS:
        value = state.get(section)
        if section in state and value is not None and not isinstance(value, dict):
            raise ShadowError(400, f"{section.capitalize()} node must be an object")
        if _deeper_than(value, MAX_DEPTH):
            raise too_deep()
        if _has_null_in_array(value):
            # The guide: "Arrays can't have null values ... will be rejected".
            raise ShadowError(400, "State contains an invalid node: arrays can't have null values")


# -- value helpers -----------------------------------------------------------------------
def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's ``==``, ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def metadata_for(value: Any, now: int) -> Any:
    """Metadata mirroring ``value``: ``{"timestamp": now}`` per leaf, per array element."""
    if isinstance(value, dict):
        return {key: metadata_for(item, now) for key, item in value.items()}
    if isinstance(value, list):
        return [metadata_for(item, now) for item in value]
    return {"timestamp": now}


def compute_delta(desired: JsonObject | None, reported: JsonObject | None) -> JsonObject:
    """Fields of ``desired`` that differ from ``reported`` (nested objects recursively)."""
    delta: JsonObject = {}
    reported = reported or {}
    for key, want in (desired or {}).items():
        if key not in reported:
            delta[key] = json_copy(want)
            continue
        have = reported[key]
        if isinstance(want, dict) and isinstance(have, dict):
            sub = compute_delta(want, have)
            if sub:
                delta[key] = sub
        elif not json_equal(want, have):
            delta[key] = json_copy(want)
    return delta


def delta_metadata(delta: JsonObject, desired_meta: JsonObject) -> JsonObject:
    """The ``desired`` metadata of exactly the fields in ``delta``."""
    out: JsonObject = {}
    for key, value in delta.items():
        meta = desired_meta.get(key)
        # Walk by the state's shape: a dict in the delta is a dict in desired, so its
        # metadata is a mirror node (a user key called "timestamp" cannot confuse this).
        if isinstance(value, dict) and isinstance(meta, dict):
            out[key] = delta_metadata(value, meta)
        elif meta is not None:
            out[key] = json_copy(meta)
    return out


def _merge(state: JsonObject, meta: JsonObject, patch: JsonObject, now: int) -> None:
    """Merge ``patch`` into ``state`` (and its ``meta``) in place; ``None`` deletes."""
    for key, value in patch.items():
        if value is None:
            state.pop(key, None)
            meta.pop(key, None)
        elif isinstance(value, dict):
            old = state.get(key)
            if isinstance(old, dict):
                child, child_meta, had_keys = old, meta.get(key) or {}, bool(old)
            else:
                child, child_meta, had_keys = {}, {}, False
            _merge(child, child_meta, value, now)
            if not child and (had_keys or value):
                # Deleting the last key of an object deletes the object, and deleting keys of
                # an object that is not there does not create it.
                state.pop(key, None)
                meta.pop(key, None)
            else:
                state[key] = child
                meta[key] = child_meta
        else:
            state[key] = json_copy(value)
            meta[key] = metadata_for(value, now)


def state_size(desired: JsonObject | None, reported: JsonObject | None) -> int:
    """Bytes of state counted against the 8 KB limit (metadata does not count)."""
    body = {k: v for k, v in (("desired", desired), ("reported", reported)) if v is not None}
    return len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


# -- the document ------------------------------------------------------------------------
@dataclass
class UpdateResult:
    """Everything an accepted update produces."""

    document: ShadowDocument
    accepted: JsonObject
    delta: JsonObject | None
    documents: JsonObject


@dataclass
class ShadowDocument:
    """One stored shadow: state sections (``None`` when absent), metadata, version, time."""

    desired: JsonObject | None = None
    reported: JsonObject | None = None
    metadata: JsonObject = field(default_factory=dict)
    version: int = 0
    timestamp: int = 0

    # -- views ---------------------------------------------------------------------------
    def state(self) -> JsonObject:
        """``{"desired": ..., "reported": ...}`` with absent sections left out."""
        out: JsonObject = {}
        if self.desired is not None:
            out["desired"] = json_copy(self.desired)
        if self.reported is not None:
            out["reported"] = json_copy(self.reported)
        return out

    def delta(self) -> JsonObject:
        return compute_delta(self.desired, self.reported)

    def _snapshot(self) -> JsonObject:
        return {
            "state": self.state(),
            "metadata": json_copy(self.metadata),
            "version": self.version,
        }

    def get_payload(self, now: int | None = None, client_token: str | None = None) -> JsonObject:
        """The ``get/accepted`` document: state with delta, metadata, version, timestamp."""
        state = self.state()
        delta = self.delta()
        if delta:
            state["delta"] = delta
        body: JsonObject = {
            "state": state,
            "metadata": json_copy(self.metadata),
            "version": self.version,
            "timestamp": self.timestamp if now is None else now,
        }
        if client_token is not None:
            body["clientToken"] = client_token
        return body

    def delta_payload(self, now: int, client_token: str | None = None) -> JsonObject | None:
        """The ``update/delta`` document, or None when desired and reported agree."""
        delta = self.delta()
        if not delta:
            return None
        body: JsonObject = {
            "state": delta,
            "metadata": delta_metadata(delta, self.metadata.get("desired", {})),
            "version": self.version,
            "timestamp": now,
        }
        if client_token is not None:
            body["clientToken"] = client_token
        return body

    # -- update --------------------------------------------------------------------------
    def apply_update(self, request: Any, now: int) -> UpdateResult:
        """Apply an ``/update`` request; raise :class:`ShadowError` if it is rejected.

        ``self`` is not modified: the new document is in the result. For a shadow that does
        not exist yet, call this on ``ShadowDocument(version=<version it had when deleted>)``.
        """
        validate_update(request)
        expected = request.get("version")
        if expected is not None and expected != self.version:
            raise ShadowError(409, "Version conflict")
        token = client_token_of(request)
        patch = request["state"]

        sections: dict[str, JsonObject | None] = {
            "desired": self.desired,
            "reported": self.reported,
        }
        metadata = json_copy(self.metadata)
        for section in _SECTIONS:
            if patch is not None and section not in patch:
                continue
            value = None if patch is None else patch[section]
            if value is None:
                sections[section] = None
                metadata.pop(section, None)
                continue
            current = json_copy(sections[section]) or {}
            meta = metadata.get(section) or {}
            _merge(current, meta, value, now)
            sections[section] = current or None
            if current:
                metadata[section] = meta
            else:
                metadata.pop(section, None)

        if state_size(sections["desired"], sections["reported"]) > MAX_STATE_BYTES:
            raise ShadowError(413, "The payload exceeds the maximum size allowed")

        new = ShadowDocument(
            desired=sections["desired"],
            reported=sections["reported"],
            metadata=metadata,
            version=self.version + 1,
            timestamp=now,
        )
        accepted: JsonObject = {
            "state": json_copy(patch),
            "metadata": {}
            if patch is None
            else {section: metadata_for(value, now) for section, value in patch.items()},
            "version": new.version,
            "timestamp": now,
        }
        if token is not None:
            accepted["clientToken"] = token

        # A delta goes out when the update writes desired (even the same values again: an
        # app re-sending desired expects the device to hear it) or when it changes the delta
        # (e.g. reported drifts from, or deletes, a desired field). A report that leaves
        # the delta as it was stays quiet, so polling devices do not loop on it.
        wrote_desired = patch is not None and isinstance(patch.get("desired"), dict)
        delta = new.delta_payload(now, token)
        if delta is not None and not wrote_desired and json_equal(delta["state"], self.delta()):
            delta = None

        documents: JsonObject = {
            "previous": self._snapshot(),
            "current": new._snapshot(),
            "timestamp": now,
        }
        if token is not None:
            documents["clientToken"] = token
        return UpdateResult(document=new, accepted=accepted, delta=delta, documents=documents)

    # -- persistence form ----------------------------------------------------------------
    def to_dict(self) -> JsonObject:
        return {
            "state": self.state(),
            "metadata": self.metadata,
            "version": self.version,
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_dict(cls, data: JsonObject) -> ShadowDocument:
        state = data.get("state") or {}
        return cls(
            desired=state.get("desired"),
            reported=state.get("reported"),
            metadata=data.get("metadata") or {},
            version=int(data.get("version", 0)),
            timestamp=int(data.get("timestamp", 0)),
        )
