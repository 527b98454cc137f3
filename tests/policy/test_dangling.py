"""References embedded in objects are decided with the objects they name (policy/dangling.py), and the store's
flag that lets every other body skip the parse (store/embedded.py) is set exactly when one is embedded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.formats.misp_in import read_misp
from kizuna.policy import VISIBLE, Outcome, embedded_references, hide_dangling
from kizuna.policy.dangling import DECIDING_REFS
from kizuna.policy.tlp import TLP2_IDS, TlpLevel
from kizuna.store.embedded import embeds
from kizuna.store.view_edges import HIDDEN_BY_REFERENCES

HIDDEN_IP = "ipv4-addr--11111111-1111-4111-8111-111111111111"
SHOWN_IP = "ipv4-addr--22222222-2222-4222-8222-222222222222"
HIDDEN_FILE = "file--33333333-3333-4333-8333-333333333333"
PRODUCER = "identity--44444444-4444-4444-8444-444444444444"
GREEN = TLP2_IDS[TlpLevel.GREEN]
MISP_EVENTS = Path(__file__).parent.parent / "fixtures" / "misp"


def _shown(ref: str) -> bool:
    return ref not in (HIDDEN_IP, HIDDEN_FILE)


def _decided(obj: dict[str, Any]) -> dict[str, Any] | None:
    decision = hide_dangling(obj, VISIBLE, _shown)
    return None if decision.outcome is Outcome.HIDDEN else dict(decision.view(obj) or {})


def test_nested_references_are_removed_and_what_breaks_a_must_goes_with_them() -> None:
    archive = {"type": "file", "id": "file--55555555-5555-4555-8555-555555555555", "name": "a.zip",
               "extensions": {"archive-ext": {"contains_refs": [HIDDEN_FILE]}}}
    # §6.7.2: an archive extension needs contains_refs; without it the extension, and the empty dictionary, go.
    assert _decided(archive) == {k: v for k, v in archive.items() if k != "extensions"}
    message = {"type": "email-message", "id": "email-message--66666666-6666-4666-8666-666666666666",
               "is_multipart": True, "body_multipart": [
                   {"content_type": "text/plain", "body": "hello"},
                   {"content_type": "application/zip", "body_raw_ref": HIDDEN_FILE}]}
    # §6.6.2: a body part needs body or body_raw_ref; the attachment part goes, the text part stays.
    decided = _decided(message)
    assert decided is not None and decided["body_multipart"] == [message["body_multipart"][0]]
    custom = {"type": "relationship", "spec_version": "2.1", "id": "relationship--77777777-7777-4777-8777-777777777777",
              "created": "2026-03-01T00:00:00Z", "modified": "2026-03-01T00:00:00Z", "relationship_type": "uses",
              "source_ref": SHOWN_IP, "target_ref": SHOWN_IP, "x_seen_with_ref": HIDDEN_IP}
    assert _decided(custom) == {k: v for k, v in custom.items() if k != "x_seen_with_ref"}
    analysis = {"type": "malware-analysis", "spec_version": "2.1",
                "id": "malware-analysis--88888888-8888-4888-8888-888888888888", "created": "2026-03-01T00:00:00Z",
                "modified": "2026-03-01T00:00:00Z", "product": "sandbox",
                "analysis_sco_refs": [HIDDEN_FILE]}
    # §4.11: result or analysis_sco_refs MUST be present: hidden, and a type the columns cannot count.
    assert _decided(analysis) is None and "malware-analysis" in HIDDEN_BY_REFERENCES
    assert _decided({**analysis, "result": "malicious"}) == {
        **{k: v for k, v in analysis.items() if k != "analysis_sco_refs"}, "result": "malicious"}


def test_the_producer_and_markings_are_not_embedded_references() -> None:
    marked = {"type": "indicator", "created_by_ref": PRODUCER, "object_marking_refs": [GREEN],
              "granular_markings": [{"marking_ref": GREEN, "selectors": ["name"]}],
              "external_references": [{"source_name": "x", "url": "https://example.org/_ref"}]}
    assert embedded_references(marked) == []
    assert not embeds("indicator", orjson.dumps(marked), PRODUCER, json.dumps([GREEN]))
    assert embeds("indicator", orjson.dumps({**marked, "x_sample_ref": HIDDEN_FILE}), PRODUCER, json.dumps([GREEN]))


def test_references_however_nested_are_found_and_one_inside_a_granular_marking_hides_the_object() -> None:
    base = {"type": "domain-name", "id": "domain-name--0a", "value": "c2.example", "object_marking_refs": [GREEN]}
    shapes = [
        {"x_ctx": {"granular_markings": True, "selectors": ["a"], "marking_ref": HIDDEN_IP}},  # look-alike keys
        {"x_ctx": {"object_marking_refs": [HIDDEN_IP]}},
        {"x_n": [[{"x_a_ref": HIDDEN_IP}]]},  # a list of lists
        {"x_ctx": {"x_a_ref": [HIDDEN_IP]}}, {"x_ctx": {"x_a_refs": {"k": HIDDEN_IP}}},
        {"x_ctx": {"x_a_refs": [{"id": HIDDEN_IP}]}}, {"x_ctx": {"x_a_refs": [[HIDDEN_IP]]}},
        {"objects": {"0": {"type": "domain-name", "resolves_to_refs": [HIDDEN_IP]}}},
        {"extensions": {"x-ext": {"extension_type": "property-extension", "items": [[{"x_ref": HIDDEN_IP}]]}}},
    ]
    for extra in shapes:
        obj = {**base, **extra}
        assert [ref for _, ref in embedded_references(obj)] == [HIDDEN_IP], extra
        assert embeds("domain-name", orjson.dumps(obj), None, json.dumps([GREEN])), extra
        decided = _decided(obj)
        assert decided is not None and HIDDEN_IP not in json.dumps(decided), extra
    inside = {**base, "granular_markings": [{"marking_ref": GREEN, "selectors": ["value"], "x_a_ref": HIDDEN_IP}]}
    assert embeds("domain-name", orjson.dumps(inside), None, json.dumps([GREEN]))
    assert _decided(inside) is None


_NAMES = st.sampled_from(["value", "name", "x_note", "resolves_to_refs", "src_ref", "x_seen_ref", "contains_refs",
                          "marking_ref", "created_by_ref", "object_marking_refs", "external_references", "x_ref_note",
                          "granular_markings", "selectors", "objects"])
_SCALARS = st.sampled_from(["plain", "_ref", '"_ref":', "created_by_ref", "marking_ref", HIDDEN_IP, 7, True])
_VALUES = st.recursive(
    _SCALARS | st.lists(_SCALARS, min_size=1, max_size=3),
    lambda inner: st.dictionaries(_NAMES, inner, min_size=1, max_size=3) | st.lists(inner, min_size=1, max_size=2),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(body=st.dictionaries(_NAMES, _VALUES, max_size=6), producer=st.booleans(), markings=st.booleans())
def test_the_stored_flag_is_the_parse(body: dict[str, Any], producer: bool, markings: bool) -> None:
    obj: dict[str, Any] = {"type": "x-thing", "id": "x-thing--99999999-9999-4999-8999-999999999999", **body}
    # The columns come from the object as ingest writes them: the producer, and the markings' ids.
    for own in ("created_by_ref", "object_marking_refs", "granular_markings"):
        obj.pop(own, None)
    if producer:
        obj["created_by_ref"] = PRODUCER
    if markings:
        obj["object_marking_refs"] = [GREEN]
    # As ingest writes bodies (core/ingest.py: orjson).
    assert embeds("x-thing", orjson.dumps(obj), PRODUCER if producer else None,
                  json.dumps([GREEN]) if markings else None) == bool(embedded_references(obj))


def test_the_stored_flag_is_the_parse_on_real_conversions() -> None:
    # The MISP project's test events, converted as `kizuna import` converts them (misp-stix).
    names = ("mainly_objects_1.json", "mainly_objects_2.json", "misp-stix/test_events_collection_1.json")
    objects = [o for name in names for o in read_misp(MISP_EVENTS / name).objects]
    assert len(objects) > 20
    for obj in objects:
        markings = obj.get("object_marking_refs")
        kind = obj["type"]
        assert embeds(kind, orjson.dumps(obj), obj.get("created_by_ref"), json.dumps(markings) if markings else None) \
            == bool(embedded_references(obj, DECIDING_REFS.get(kind, frozenset()))), obj["id"]
