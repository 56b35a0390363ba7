"""Pure tests of the shadow document semantics, against the AWS IoT developer guide's examples.

Quoted documents come from the guide's pages "Device Shadow service documents" (delta state,
empty properties, arrays), "Interacting with shadows" (optimistic locking, deleting data) and
"Device Shadow error messages".
"""

from __future__ import annotations

import json

import pytest

from pyiot.local.shadow_doc import (
    ShadowDocument,
    ShadowError,
    compute_delta,
    json_equal,
    lenient_client_token,
    parse_json,
    validate_shadow_name,
    validate_thing_name,
)

T0, T1, T2 = 1000, 2000, 3000


def doc_from(state: dict, version: int = 1, now: int = T0) -> ShadowDocument:
    """A document at ``version`` holding ``state``, built through a real update."""
    return ShadowDocument(version=version - 1).apply_update({"state": state}, now).document


def error_of(request: object, document: ShadowDocument | None = None) -> ShadowError:
    with pytest.raises(ShadowError) as info:
        (document or ShadowDocument()).apply_update(request, T1)
    return info.value


# -- delta ------------------------------------------------------------------------------
def test_delta_example_from_the_guide() -> None:
    # "Fields in the desired section that are not in the reported section are included in the
    # delta. Fields that are in the reported section and not in the desired section are not."
    desired = {"color": "RED", "state": "STOP"}
    reported = {"color": "GREEN", "engine": "ON"}
    assert compute_delta(desired, reported) == {"color": "RED", "state": "STOP"}


def test_delta_of_nested_objects_keeps_the_path_to_the_root() -> None:
    # "When nested objects differ, the delta contains the path all the way to the root."
    desired = {"lights": {"color": {"r": 255, "g": 255, "b": 255}}}
    reported = {"lights": {"color": {"r": 255, "g": 0, "b": 255}}}
    assert compute_delta(desired, reported) == {"lights": {"color": {"g": 255}}}


def test_delta_compares_arrays_as_values() -> None:
    # "If an array in the desired section doesn't match the array in the reported section,
    # then the entire desired array is copied into the delta."
    assert compute_delta({"colors": ["RED", "GREEN"]}, {"colors": ["RED"]}) == {
        "colors": ["RED", "GREEN"]
    }
    assert compute_delta({"colors": ["RED"]}, {"colors": ["RED"]}) == {}


def test_delta_is_json_typed() -> None:
    # Python says True == 1; JSON does not.
    assert compute_delta({"on": True, "n": 1}, {"on": 1, "n": 1.0}) == {"on": True}
    assert not json_equal([True], [1])
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})


def test_get_payload_quotes_the_guides_retrieval_example() -> None:
    doc = (
        ShadowDocument()
        .apply_update({"state": {"desired": {"lights": {"color": "RED"}, "engine": "ON"}}}, 123456)
        .document
    )
    doc = doc.apply_update(
        {"state": {"reported": {"lights": {"color": "GREEN"}, "engine": "ON"}}}, 789012
    ).document
    payload = doc.get_payload(now=123456789)
    assert payload["state"]["delta"] == {"lights": {"color": "RED"}}
    assert payload["metadata"] == {
        "desired": {"lights": {"color": {"timestamp": 123456}}, "engine": {"timestamp": 123456}},
        "reported": {"lights": {"color": {"timestamp": 789012}}, "engine": {"timestamp": 789012}},
    }
    assert payload["version"] == 2
    assert payload["timestamp"] == 123456789


# -- update -----------------------------------------------------------------------------
def test_update_affects_only_the_fields_specified() -> None:
    # Guide, "Updating a shadow": nested objects merge key by key.
    doc = doc_from({"reported": {"color": {"r": 255, "g": 255, "b": 0}}})
    doc = doc.apply_update({"state": {"desired": {"color": {"r": 10}, "engine": "ON"}}}, T1)
    doc = doc.document.apply_update(
        {"state": {"reported": {"color": {"r": 10}, "engine": "ON"}}}, T2
    ).document
    assert doc.reported == {"color": {"r": 10, "g": 255, "b": 0}, "engine": "ON"}
    assert doc.metadata["reported"]["color"] == {
        "r": {"timestamp": T2},
        "g": {"timestamp": T0},
        "b": {"timestamp": T0},
    }


def test_accepted_echoes_only_the_request_with_metadata_version_and_token() -> None:
    doc = doc_from({"reported": {"temp": 55}})
    result = doc.apply_update(
        {"state": {"desired": {"color": "RED", "lights": {"on": True}}}, "clientToken": "abc"}, T1
    )
    assert result.accepted == {
        "state": {"desired": {"color": "RED", "lights": {"on": True}}},
        "metadata": {"desired": {"color": {"timestamp": T1}, "lights": {"on": {"timestamp": T1}}}},
        "version": 2,
        "timestamp": T1,
        "clientToken": "abc",
    }
    assert result.delta == {
        "state": {"color": "RED", "lights": {"on": True}},
        "metadata": {"color": {"timestamp": T1}, "lights": {"on": {"timestamp": T1}}},
        "version": 2,
        "timestamp": T1,
        "clientToken": "abc",
    }
    assert result.documents["previous"]["state"] == {"reported": {"temp": 55}}
    assert result.documents["previous"]["version"] == 1
    assert result.documents["current"]["state"] == {
        "desired": {"color": "RED", "lights": {"on": True}},
        "reported": {"temp": 55},
    }
    assert result.documents["current"]["version"] == 2
    assert result.documents["clientToken"] == "abc"


def test_version_increments_on_every_accepted_update() -> None:
    doc = ShadowDocument()
    for expected in (1, 2, 3):
        doc = doc.apply_update({"state": {"reported": {"n": expected}}}, T1).document
        assert doc.version == expected


def test_null_deletes_keys_and_sections_as_in_the_guide() -> None:
    # Guide, "Deleting data": initial state, update, final state.
    doc = doc_from(
        {
            "desired": {"lights": {"color": "RED"}, "engine": "ON"},
            "reported": {"lights": {"color": "GREEN"}, "engine": "OFF"},
        }
    )
    result = doc.apply_update({"state": {"desired": None, "reported": {"engine": None}}}, T1)
    assert result.document.state() == {"reported": {"lights": {"color": "GREEN"}}}
    assert result.document.metadata == {"reported": {"lights": {"color": {"timestamp": T0}}}}
    assert result.accepted["state"] == {"desired": None, "reported": {"engine": None}}
    assert result.delta is None


def test_deleting_the_last_nested_key_removes_the_object() -> None:
    doc = doc_from({"desired": {"lights": {"color": "RED"}, "x": 1}})
    doc = doc.apply_update({"state": {"desired": {"lights": {"color": None}}}}, T1).document
    assert doc.desired == {"x": 1}
    assert doc.metadata == {"desired": {"x": {"timestamp": T0}}}
    doc = doc.apply_update({"state": {"desired": {"ghost": {"k": None}}}}, T2).document
    assert doc.desired == {"x": 1}


def test_state_null_empties_the_shadow_but_keeps_it() -> None:
    # "sending {"state": null} deletes all of the state data, but the device's shadow remains"
    doc = doc_from({"desired": {"a": 1}, "reported": {"b": 2}}, version=4)
    result = doc.apply_update({"state": None}, T1)
    assert result.document.state() == {}
    assert result.document.metadata == {}
    assert result.document.version == 5
    assert result.document.get_payload()["state"] == {}


def test_empty_shadow_properties() -> None:
    # "The reported and desired properties ... can be empty or omitted"
    doc = doc_from({"reported": {"temp": 55}})
    assert doc.state() == {"reported": {"temp": 55}}
    assert doc.desired is None


def test_arrays_are_replaced_whole() -> None:
    # Guide, "Array values in shadow documents": initial, update, final.
    doc = doc_from({"desired": {"colors": ["RED", "GREEN", "BLUE"]}})
    doc = doc.apply_update({"state": {"desired": {"colors": ["RED"]}}}, T1).document
    assert doc.desired == {"colors": ["RED"]}
    assert doc.metadata["desired"]["colors"] == [{"timestamp": T1}]


def test_optimistic_locking_example() -> None:
    # Guide, "Optimistic locking": version 10 document, update with 9 rejected, 10 accepted.
    doc = doc_from({"desired": {"colors": ["RED", "GREEN", "BLUE"]}}, version=10)
    assert doc.version == 10
    err = error_of({"state": {"desired": {"colors": ["BLUE"]}}, "version": 9}, doc)
    assert (err.code, err.message) == (409, "Version conflict")
    doc = doc.apply_update({"state": {"desired": {"colors": ["BLUE"]}}, "version": 10}, T1)
    assert doc.document.state() == {"desired": {"colors": ["BLUE"]}}
    assert doc.document.version == 11


def test_recreated_shadow_continues_the_version() -> None:
    # "deleting a shadow does not reset its version number to 0"
    result = ShadowDocument(version=7).apply_update({"state": {"reported": {"a": 1}}}, T1)
    assert result.document.version == 8


def test_delta_is_published_for_desired_writes_and_delta_changes_only() -> None:
    doc = doc_from({"desired": {"color": "RED"}})
    same = doc.apply_update({"state": {"desired": {"color": "RED"}}}, T1)
    assert same.delta is not None and same.delta["state"] == {"color": "RED"}
    unrelated = doc.apply_update({"state": {"reported": {"temp": 20}}}, T1)
    assert unrelated.delta is None
    drift = doc_from({"desired": {"color": "RED"}, "reported": {"color": "RED"}})
    changed = drift.apply_update({"state": {"reported": {"color": None}}}, T1)
    # "If an attribute is deleted from the reported section but still exists in the desired
    # section, it is included."
    assert changed.delta is not None and changed.delta["state"] == {"color": "RED"}


def test_storage_round_trip() -> None:
    doc = doc_from({"desired": {"a": [1, 2]}, "reported": {"b": {"c": "x"}}}, version=3)
    again = ShadowDocument.from_dict(json.loads(json.dumps(doc.to_dict())))
    assert again == doc


# -- errors -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        (b"{not json", 400, "Invalid JSON"),
        (b"", 400, "Invalid JSON"),
        (b'{"state": NaN}', 400, "Invalid JSON"),
        (b"\xff\xfe", 415, "Unsupported documented encoding; supported encoding is UTF-8"),
        (b" " * (129 * 1024), 413, "The payload exceeds the maximum size allowed"),
    ],
)
def test_payload_errors(payload: bytes, code: int, message: str) -> None:
    with pytest.raises(ShadowError) as info:
        parse_json(payload)
    assert (info.value.code, info.value.message) == (code, message)


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ([1, 2], "Invalid JSON"),
        ({"clientToken": "t"}, "Missing required node: state"),
        ({"state": "on"}, "State node must be an object"),
        ({"state": {"desired": 1}}, "Desired node must be an object"),
        ({"state": {"reported": ["a"]}}, "Reported node must be an object"),
        ({"state": {"delta": {"a": 1}}}, "State contains an invalid node"),
        ({"state": {}, "version": "3"}, "Invalid version"),
        ({"state": {}, "version": True}, "Invalid version"),
        ({"state": {}, "clientToken": "x" * 65}, "Invalid clientToken"),
        ({"state": {}, "clientToken": 12}, "Invalid clientToken"),
        (
            {"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}},
            "JSON contains too many levels of nesting; maximum is 6",
        ),
    ],
)
def test_bad_request_errors(request_body: object, message: str) -> None:
    err = error_of(request_body)
    assert (err.code, err.message) == (400, message)


def test_six_levels_of_nesting_and_a_64_byte_token_are_allowed() -> None:
    request = {
        "state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}},
        "clientToken": "x" * 64,
    }
    assert ShadowDocument().apply_update(request, T1).document.version == 1


def test_arrays_cannot_hold_null() -> None:
    # "Arrays can't have null values ... will be rejected."
    err = error_of({"state": {"desired": {"colors": [None, "RED", "GREEN"]}}})
    assert err.code == 400


def test_state_over_8kb_is_413() -> None:
    doc = doc_from({"reported": {"a": "x" * 5000}})
    err = error_of({"state": {"desired": {"b": "y" * 4000}}}, doc)
    assert (err.code, err.message) == (413, "The payload exceeds the maximum size allowed")
    # Metadata does not count: 8 KB of state in small keys is accepted.
    ShadowDocument().apply_update({"state": {"reported": {"a": "x" * 8000}}}, T1)


def test_rejected_payload_carries_code_message_timestamp_and_token() -> None:
    err = ShadowError(409, "Version conflict")
    assert err.payload(T2, "tok") == {
        "code": 409,
        "message": "Version conflict",
        "timestamp": T2,
        "clientToken": "tok",
    }
    assert "clientToken" not in err.payload(T2)


@pytest.mark.parametrize("name", ["ok", "a:b_c-D9", "x" * 128])
def test_valid_thing_names(name: str) -> None:
    validate_thing_name(name)


@pytest.mark.parametrize("name", ["", "sp ace", "dollar$", "x" * 129, "ünï"])
def test_invalid_thing_names(name: str) -> None:
    with pytest.raises(ShadowError) as info:
        validate_thing_name(name)
    assert (info.value.code, info.value.message) == (400, "Invalid thing name")


def test_shadow_names() -> None:
    validate_shadow_name(None)
    validate_shadow_name("x" * 64)
    with pytest.raises(ShadowError, match="Invalid shadow name"):
        validate_shadow_name("x" * 65)


def test_get_and_delete_bodies_are_lenient() -> None:
    assert lenient_client_token(b"") is None
    assert lenient_client_token(b"garbage") is None
    assert lenient_client_token(b'{"clientToken": "t-1"}') == "t-1"
