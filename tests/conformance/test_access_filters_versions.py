"""TAXII 2.1 rules §4 (access control), §5 (filtering) and the versioning parts of §3/§5.

Each test publishes objects with fresh ids and filters on them, so the shared node's
other content never matters.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from tests.conformance.conftest import (
    TIMESTAMP_RE,
    assert_alive,
    assert_taxii,
    assert_taxii_error,
    compact,
    indicator,
    instant,
    manifest_of,
    objects_url,
    stix_time,
    stored_versions,
    versions_of,
)
from tests.conftest import Node


def _ids(body: dict[str, Any]) -> list[str]:
    return [o["id"] for o in body.get("objects", [])]


def _id_versions(body: dict[str, Any]) -> list[tuple[str, int]]:
    return [
        (o["id"], instant(o.get("modified", o.get("created", o.get("version", "")))))
        for o in body.get("objects", [])
    ]


# -- §4 access control -------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["manifest/", "objects/", "OBJECT/", "OBJECT/versions/"])
def test_no_read_right_means_403_or_404_on_every_read(node: Node, suffix: str) -> None:
    # rules §4: can_read=false → 403 or 404 for manifest, objects, object, versions
    obj = indicator()
    node.post([obj])
    path = suffix.replace("OBJECT", f"objects/{obj['id']}")
    for token in ("writeonly", "outsider"):
        response = node.session(token).get(node.collection_url() + path)
        body = assert_taxii_error(response, response.status_code)
        assert response.status_code in (403, 404), (token, response.status_code)
        assert obj["id"] not in str(body)


def test_no_write_right_means_403_or_404_and_nothing_stored(node: Node) -> None:
    # rules §4: can_write=false → POST 403 or 404
    for token in ("reader", "outsider"):
        obj = indicator()
        response = node.session(token).post(
            objects_url(node), json={"objects": [obj]},
            headers={"Content-Type": "application/taxii+json;version=2.1"},
        )
        assert response.status_code in (403, 404)
        assert_taxii_error(response, response.status_code)
        assert manifest_of(node, [obj["id"]]) == []


@pytest.mark.parametrize(("token", "expected"), [("outsider", 404), ("reader", 403), ("writeonly", 403)])
def test_delete_access_table(node: Node, token: str, expected: int) -> None:
    # rules §4 DELETE table: (F,F) 404, (T,F) 403, (F,T) 403
    obj = indicator()
    node.post([obj])
    response = node.session(token).delete(objects_url(node) + obj["id"] + "/")
    assert_taxii_error(response, expected)
    assert [r["id"] for r in manifest_of(node, [obj["id"]])] == [obj["id"]]


def test_delete_with_read_and_write_proceeds_and_hides_the_object(node: Node) -> None:
    # rules §4 DELETE table (T,T) proceeds; after-delete rules
    obj = versions_of(2)
    object_id = obj[0]["id"]
    node.post(obj)
    node.post(obj, collection=node.other_collection)
    session = node.session()
    response = session.delete(objects_url(node) + object_id + "/")
    assert response.status_code == 200 and response.content == b""
    assert_taxii_error(session.get(objects_url(node) + object_id + "/"), 404)
    assert_taxii_error(session.get(objects_url(node) + object_id + "/versions/"), 404)
    for version in obj:
        response = session.get(objects_url(node) + object_id + "/", params={"match[version]": version["modified"]})
        assert_taxii_error(response, 404)
    assert manifest_of(node, [object_id]) == []
    assert stored_versions(node, [object_id]) == []
    # other collections MAY still include it; this server keeps it there
    assert len(stored_versions(node, [object_id], node.other_collection)) == 2
    assert_taxii_error(session.delete(objects_url(node) + object_id + "/"), 404)


def test_delete_one_version_keeps_the_others(node: Node) -> None:
    # rules §5.5 delete accepts match[version]; §5.7 last is recomputed
    sent = versions_of(3)
    object_id = sent[0]["id"]
    node.post(sent)
    session = node.session()
    response = session.delete(objects_url(node) + object_id + "/", params={"match[version]": sent[2]["modified"]})
    assert response.status_code == 200
    remaining = stored_versions(node, [object_id])
    assert [o["modified"] for o in remaining] == [sent[0]["modified"], sent[1]["modified"]]
    latest = assert_taxii(session.get(objects_url(node) + object_id + "/"))
    assert [o["modified"] for o in latest["objects"]] == [sent[1]["modified"]]
    response = session.delete(objects_url(node) + object_id + "/", params={"match[version]": "first"})
    assert response.status_code == 200
    assert [o["modified"] for o in stored_versions(node, [object_id])] == [sent[1]["modified"]]


def test_delete_with_a_spec_version_that_matches_nothing_is_404_and_keeps_the_object(node: Node) -> None:
    # rules §5.5 delete accepts match[spec_version]; §5.8
    obj = indicator()
    node.post([obj])
    response = node.session().delete(objects_url(node) + obj["id"] + "/", params={"match[spec_version]": "2.0"})
    assert_taxii_error(response, 404)
    assert len(stored_versions(node, [obj["id"]])) == 1


def test_delete_unknown_and_invalid_ids(node: Node) -> None:
    # rules §2 E10 failure codes: unknown → 404, not an identifier → 400
    session = node.session()
    assert_taxii_error(session.delete(objects_url(node) + f"indicator--{uuid.uuid4()}/"), 404)
    assert_taxii_error(session.delete(objects_url(node) + "not-an-id/"), 400)
    assert_alive(node)


# -- §5 filtering ------------------------------------------------------------------------

_BOGUS = [
    ("added_after", "yesterday"), ("added_after", "2026-13-01T00:00:00Z"), ("added_after", "2026-01-01"),
    ("added_after", ""), ("limit", "0"), ("limit", "-1"), ("limit", "abc"), ("limit", "1.5"), ("limit", ""),
    ("limit", " 1"), ("next", ""), ("next", "garbage"), ("next", "AAAA.BBBB"), ("match[version]", "newest"),
    ("match[version]", "all,first"), ("match[version]", "first,first"), ("match[version]", ""),
    ("match[version]", "2026-01-01T00:00:00Z,2026-01-01T00:00:00.000Z"), ("match[spec_version]", "two"),
    ("match[spec_version]", "2.1,"),
]
_BOGUS_LISTING = [
    ("match[type]", "Indicator"), ("match[type]", "indicator, malware"), ("match[type]", "x"),
    ("match[type]", "indicator,,malware"), ("match[type]", "indicator,indicator"), ("match[id]", "indicator--1"),
    ("match[id]", "not-an-id"), ("match[id]", ""),
]


@pytest.mark.parametrize(("name", "value"), _BOGUS + _BOGUS_LISTING)
def test_bogus_filter_values_are_400_on_listings(node: Node, name: str, value: str) -> None:
    # rules §5.1, §5.3, §5.4, §5.7
    for suffix in ("objects/", "manifest/"):
        response = node.session().get(node.collection_url() + suffix, params={name: value})
        assert_taxii_error(response, 400)
    assert_alive(node)


@pytest.mark.parametrize(("name", "value"), _BOGUS)
def test_bogus_filter_values_are_400_on_single_object_endpoints(node: Node, name: str, value: str) -> None:
    # rules §5.1, §5.5: object and versions take added_after, limit, next and (object) match[version]
    obj = indicator()
    node.post([obj])
    session = node.session()
    object_url = objects_url(node) + obj["id"] + "/"
    assert_taxii_error(session.get(object_url, params={name: value}), 400)
    if name != "match[version]":  # versions does not take match[version]
        assert_taxii_error(session.get(object_url + "versions/", params={name: value}), 400)


@pytest.mark.parametrize("name", [
    "added_after", "limit", "next", "match[type]", "match[id]", "match[version]", "match[spec_version]",
])
def test_repeated_parameters_are_400(node: Node, name: str) -> None:
    # rules §5.1, §5.4 (a field MUST NOT appear twice)
    values = {
        "added_after": "2020-01-01T00:00:00Z", "limit": "5", "next": "x", "match[type]": "indicator",
        "match[id]": f"indicator--{uuid.uuid4()}", "match[version]": "last", "match[spec_version]": "2.1",
    }
    url = objects_url(node) + "?" + f"{name}={values[name]}&{name}={values[name]}"
    assert_taxii_error(node.session().get(url), 400)
    assert_taxii_error(node.session().get(url.replace("/objects/", "/manifest/")), 400)


def _single_valued_query_parameters() -> list[tuple[str, str, str]]:
    """(method, path, name) of every query parameter of the HTTP API that takes one value, read from the
    OpenAPI document, where a parameter that may come more than once says "repeatable"."""
    from kizuna.taxii.openapi import openapi_document

    return [(method, path, parameter["name"])
            for path, operations in openapi_document()["paths"].items()
            for method, operation in operations.items() if "console" not in operation["tags"]
            for parameter in operation.get("parameters", ())
            if parameter["in"] == "query" and "repeatable" not in parameter["description"]]


@pytest.mark.parametrize(("method", "path", "name"), _single_valued_query_parameters(),
                         ids=lambda part: str(part))
def test_every_single_valued_parameter_is_refused_when_repeated_as_on_objects(node: Node, method: str, path: str,
                                                                             name: str) -> None:
    # rules §5.4 (a field MUST NOT appear twice), and one rule for all: tombstones' deleted_after and the
    # hash matcher's threshold were read as their last value while objects' limit was a 400.
    url = node.base + path.format(api_root="main", collection=node.collection, object_id=indicator()["id"])
    response = node.session().request(method.upper(), url, params=[(name, "1"), (name, "1")])
    error = assert_taxii_error(response, 400)
    hint = " with comma-separated values" if name.startswith("match[") else ""
    assert error["description"] == f"query parameter {name!r} is repeated; give it once{hint}"


def test_match_id_values_are_ored_and_fields_anded(node: Node) -> None:
    # rules §5.4
    a, b, c = indicator(), indicator(), indicator()
    node.post([a, b, c])
    session = node.session()
    body = assert_taxii(session.get(objects_url(node), params={"match[id]": f"{a['id']},{b['id']}"}))
    assert sorted(_ids(body)) == sorted([a["id"], b["id"]])
    body = assert_taxii(session.get(objects_url(node), params={"match[id]": a["id"], "match[type]": "malware"}))
    assert "objects" not in body
    body = assert_taxii(session.get(
        objects_url(node), params={"match[id]": f"{a['id']},{c['id']}", "match[type]": "malware,indicator"}
    ))
    assert sorted(_ids(body)) == sorted([a["id"], c["id"]])


def test_match_type_selects_types_and_absent_defined_types_are_not_errors(node: Node) -> None:
    # rules §5.6 (manifest filtering applies to the source object)
    ind = indicator()
    malware = {
        "type": "malware", "spec_version": "2.1", "id": f"malware--{uuid.uuid4()}", "created": stix_time(),
        "modified": stix_time(), "name": "probe", "is_family": False,
    }
    node.post([ind, malware])
    ids = f"{ind['id']},{malware['id']}"
    session = node.session()
    for suffix in ("objects/", "manifest/"):
        url = node.collection_url() + suffix
        body = assert_taxii(session.get(url, params={"match[id]": ids, "match[type]": "malware"}))
        assert _ids(body) == [malware["id"]]
        body = assert_taxii(session.get(url, params={"match[id]": ids, "match[type]": "attack-pattern,grouping"}))
        assert "objects" not in body


def test_unknown_and_inapplicable_match_fields_are_ignored(node: Node) -> None:
    # rules §5.4 (unknown fields MAY be ignored), §5.5 (fields per endpoint)
    obj = indicator()
    node.post([obj])
    session = node.session()
    body = assert_taxii(session.get(objects_url(node), params={"match[id]": obj["id"], "match[colour]": "blue"}))
    assert _ids(body) == [obj["id"]]
    body = assert_taxii(session.get(objects_url(node) + obj["id"] + "/", params={"match[type]": "malware"}))
    assert _ids(body) == [obj["id"]]
    body = assert_taxii(session.get(objects_url(node) + obj["id"] + "/versions/", params={"match[version]": "first"}))
    assert len(body["versions"]) == 1


def test_added_after_is_strictly_after_date_added(node: Node) -> None:
    # rules §5.2: date_added > value; TAXII date_added, not STIX created/modified
    objs = [indicator(created="2000-01-01T00:00:00Z") for _ in range(3)]
    for obj in objs:
        node.post([obj])
    records = manifest_of(node, [o["id"] for o in objs])
    assert [r["id"] for r in records] == [o["id"] for o in objs]
    session = node.session()
    ids = ",".join(o["id"] for o in objs)
    for position, record in enumerate(records):
        params = {"match[id]": ids, "added_after": record["date_added"]}
        body = assert_taxii(session.get(objects_url(node), params=params))
        assert _ids(body) == [o["id"] for o in objs[position + 1:]]
    params = {"match[id]": ids, "added_after": "2001-01-01T00:00:00Z"}
    body = assert_taxii(session.get(objects_url(node), params=params))
    assert _ids(body) == [o["id"] for o in objs]


def test_limit_bounds_the_page_and_a_large_limit_returns_everything(node: Node) -> None:
    # rules §5.3
    objs = [indicator() for _ in range(4)]
    node.post(objs)
    ids = ",".join(o["id"] for o in objs)
    session = node.session()
    for limit in (1, 3):
        body = assert_taxii(session.get(objects_url(node), params={"match[id]": ids, "limit": str(limit)}))
        assert len(body["objects"]) == limit and body["more"] is True
    for limit in (4, 5, 10**9):
        body = assert_taxii(session.get(objects_url(node), params={"match[id]": ids, "limit": str(limit)}))
        assert _ids(body) == [o["id"] for o in objs] and body.get("more", False) is False


def test_results_are_sorted_by_date_added(node: Node) -> None:
    # rules §5.9: ascending date_added, not STIX modified
    late, early = indicator(created=stix_time(50)), indicator(created=stix_time(1))
    node.post([late])
    node.post([early])
    ids = ",".join([early["id"], late["id"]])
    for suffix in ("objects/", "manifest/"):
        body = assert_taxii(node.session().get(node.collection_url() + suffix, params={"match[id]": ids}))
        assert _ids(body) == [late["id"], early["id"]]
    records = manifest_of(node, [early["id"], late["id"]])
    assert [instant(r["date_added"]) for r in records] == sorted(instant(r["date_added"]) for r in records)


# -- versions (§5.7, §3 manifest) ---------------------------------------------------------

@pytest.fixture()
def versioned(node: Node) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Three versions of X, posted out of order across two requests, and one version of Y."""
    sent = versions_of(3)
    single = indicator(created=stix_time(30))  # a version instant none of X's versions share
    node.post([sent[2], single])
    node.post([sent[0], sent[1]])
    return sent, single


@pytest.mark.parametrize(("selector", "expected"), [
    (None, ["x2", "y"]),
    ("last", ["x2", "y"]),
    ("first", ["x0", "y"]),
    ("first,last", ["x0", "x2", "y"]),
    ("all", ["x0", "x1", "x2", "y"]),
    ("<1>", ["x1"]),
    ("<0>,<2>", ["x0", "x2"]),
    ("last,<1>", ["x1", "x2", "y"]),
    ("first,<0>", ["x0", "y"]),
    ("<1ms>", ["x1"]),
    ("2031-01-01T00:00:00.000Z", []),
])
def test_match_version(node: Node, versioned: Any, selector: str | None, expected: list[str]) -> None:
    # rules §5.7 (default last; first; all; timestamps, several; first,last deduplicated)
    sent, single = versioned
    names = {f"x{i}": (sent[i]["id"], instant(sent[i]["modified"])) for i in range(3)}
    names["y"] = (single["id"], instant(single["modified"]))
    params = {"match[id]": f"{sent[0]['id']},{single['id']}"}
    if selector is not None:
        value = selector.replace("<1ms>", sent[1]["modified"])
        for i in range(3):  # <i> is the TAXII form with six digits; <1ms> the three-digit STIX text
            micros = instant(sent[i]["modified"]) % 1_000_000
            value = value.replace(f"<{i}>", sent[i]["modified"][:19] + f".{micros:06d}Z")
        params["match[version]"] = value
    want = sorted(names[n] for n in expected)
    for suffix in ("objects/", "manifest/"):
        body = assert_taxii(node.session().get(node.collection_url() + suffix, params=params))
        assert sorted(_id_versions(body)) == want, suffix
        assert ("objects" in body) == bool(expected)


def test_manifest_has_one_record_per_version_in_date_added_order(node: Node, versioned: Any) -> None:
    # rules §3 manifest (one record per version), §5.9
    sent, single = versioned
    records = manifest_of(node, [sent[0]["id"], single["id"]])
    assert [(r["id"], instant(r["version"])) for r in records] == [
        (sent[2]["id"], instant(sent[2]["modified"])), (single["id"], instant(single["modified"])),
        (sent[0]["id"], instant(sent[0]["modified"])), (sent[1]["id"], instant(sent[1]["modified"])),
    ]
    added = [instant(r["date_added"]) for r in records]
    assert added == sorted(added) and len(set(added)) == len(added)


def test_get_object_and_versions(node: Node, versioned: Any) -> None:
    # rules §2 E9, E11; §5.5 (object takes match[version]); §3 versions
    sent, _ = versioned
    session = node.session()
    url = objects_url(node) + sent[0]["id"] + "/"
    latest = assert_taxii(session.get(url))
    assert [o["modified"] for o in latest["objects"]] == [sent[2]["modified"]]
    every = assert_taxii(session.get(url, params={"match[version]": "all"}))
    assert sorted(o["modified"] for o in every["objects"]) == [o["modified"] for o in sent]
    first = assert_taxii(session.get(url, params={"match[version]": "first"}))
    assert [o["modified"] for o in first["objects"]] == [sent[0]["modified"]]
    versions = assert_taxii(session.get(url + "versions/"))
    # versions come in date_added order: X2 was added before X0 and X1
    assert [instant(v) for v in versions["versions"]] == [instant(sent[i]["modified"]) for i in (2, 0, 1)]
    page = assert_taxii(session.get(url + "versions/", params={"limit": "2"}))
    assert len(page["versions"]) == 2 and page["more"] is True


def test_spec_version_filter(node: Node) -> None:
    # rules §5.8: the response MUST NOT include other spec versions
    obj = indicator()
    node.post([obj])
    session = node.session()
    for suffix in ("objects/", "manifest/"):
        url = node.collection_url() + suffix
        for value, found in (("2.1", True), ("2.0", False), ("2.0,2.1", True)):
            body = assert_taxii(session.get(url, params={"match[id]": obj["id"], "match[spec_version]": value}))
            assert _ids(body) == ([obj["id"]] if found else [])
    url = objects_url(node) + obj["id"] + "/"
    assert _ids(assert_taxii(session.get(url, params={"match[spec_version]": "2.1"}))) == [obj["id"]]
    body = assert_taxii(session.get(url + "versions/", params={"match[spec_version]": "2.0"}))
    assert "versions" not in body


def test_unversioned_objects_use_created_or_date_added(node: Node) -> None:
    # rules §5.7: an unversioned object uses created; SCOs have neither, so date_added stands in
    marking: dict[str, Any] = {
        "type": "marking-definition", "spec_version": "2.1", "id": f"marking-definition--{uuid.uuid4()}",
        "created": "2026-02-03T04:05:06.789Z", "definition_type": "statement",
        "definition": {"statement": "Copyright 2026 conformance"},
    }
    sco: dict[str, Any] = {
        "type": "ipv4-addr", "spec_version": "2.1", "id": f"ipv4-addr--{uuid.uuid4()}", "value": "192.0.2.44",
    }
    status = node.post([marking, sco])
    assert status["success_count"] == 2
    records = {r["id"]: r for r in manifest_of(node, [marking["id"], sco["id"]])}
    assert instant(records[marking["id"]]["version"]) == instant(marking["created"])
    assert TIMESTAMP_RE.match(records[sco["id"]]["date_added"]) and records[sco["id"]]["version"]
    body = assert_taxii(node.session().get(
        objects_url(node), params={"match[id]": marking["id"], "match[version]": marking["created"]}
    ))
    assert _ids(body) == [marking["id"]]
    again = node.post([sco])
    assert again["success_count"] == 1 and again["failure_count"] == 0
    assert len(manifest_of(node, [sco["id"]])) == 1


def test_objects_read_back_byte_identical(node: Node) -> None:
    # rules §3 envelope / STIX §3.6: the same (id, modified) serialises identically, key order included
    unusual: dict[str, Any] = {
        "spec_version": "2.1", "modified": stix_time(2, 123456), "type": "indicator",
        "pattern_type": "stix", "id": f"indicator--{uuid.uuid4()}", "created": stix_time(1, 500000),
        "pattern": "[file:name = 'évasion\\\\x.exe']", "valid_from": "2026-01-01T00:00:00Z",
        "description": "日本語の説明 — \"quoted\" \\ back\tslash \u2028 and 🙂", "confidence": 85,
        "x_float": 0.1, "x_negative": -12.5e-3, "x_nested": {"z": [1, {"b": None, "a": True}], "a": "first"},
        "labels": ["b-label", "a-label"], "x_big_int": 9007199254740993,
    }
    plain = indicator()
    versions = versions_of(2)
    sent = [unusual, plain, *versions]
    node.post(sent)
    session = node.session()
    ids = ",".join(dict.fromkeys(o["id"] for o in sent))
    listing = session.get(objects_url(node), params={"match[id]": ids, "match[version]": "all"})
    assert_taxii(listing)
    for obj in sent:
        assert compact(obj).encode() in listing.content, obj["id"]
    single = session.get(objects_url(node) + unusual["id"] + "/")
    assert single.content == b'{"more":false,"objects":[' + compact(unusual).encode() + b"]}"


def test_empty_results_omit_the_list(node: Node) -> None:
    # rules §1.10: empty lists are prohibited
    absent = f"indicator--{uuid.uuid4()}"
    session = node.session()
    for suffix in ("objects/", "manifest/"):
        response = session.get(node.collection_url() + suffix, params={"match[id]": absent})
        body = assert_taxii(response)
        assert body in ({}, {"more": False}) and "[]" not in response.text
    obj = indicator()
    node.post([obj])
    response = session.get(objects_url(node) + obj["id"] + "/versions/", params={"added_after": "2999-01-01T00:00:00Z"})
    assert assert_taxii(response) in ({}, {"more": False}) and "[]" not in response.text
    status = node.post([])
    assert "successes" not in status and "failures" not in status and "pendings" not in status


_FIXED_UUID = "9612e7f1-573d-4114-98b8-0ed7e3c70957"  # fixed so test ids match across xdist workers


@pytest.mark.parametrize("bad_id", [
    "not-an-id", "indicator--1234", f"indicator-{_FIXED_UUID}", f"INDICATOR--{_FIXED_UUID}",
    f"indicator--{_FIXED_UUID}x", "..%2F..%2Fetc", "%00",
])
def test_invalid_object_ids_in_the_path_are_400(node: Node, bad_id: str) -> None:
    # rules §2 E9/E10/E11 list 400; this server answers 400 for anything that is not type--UUID
    session = node.session()
    base = objects_url(node)
    for response in (session.get(base + bad_id + "/"), session.get(base + bad_id + "/versions/"),
                     session.delete(base + bad_id + "/")):
        assert response.status_code in (400, 404)
        assert_taxii_error(response, response.status_code)
        if bad_id.startswith(("not-", "indicator", "INDICATOR")):
            assert response.status_code == 400
    assert_alive(node)


def test_unknown_collection_is_404_everywhere(node: Node) -> None:
    # rules §2 failure codes
    session = node.session()
    for ref in (str(uuid.uuid4()), "no-such-alias"):
        base = node.collection_url(ref)
        object_id = f"indicator--{uuid.uuid4()}"
        for response in (
            session.get(base), session.get(base + "manifest/"), session.get(base + "objects/"),
            session.get(base + f"objects/{object_id}/"), session.get(base + f"objects/{object_id}/versions/"),
            session.delete(base + f"objects/{object_id}/"),
            session.post(base + "objects/", json={"objects": [indicator()]},
                         headers={"Content-Type": "application/taxii+json;version=2.1"}),
        ):
            assert_taxii_error(response, 404)
    assert_alive(node)


def test_requests_module_sanity(node: Node) -> None:
    # guards the helpers above: an unauthenticated request really is unauthenticated
    assert requests.get(objects_url(node)).status_code == 401


@pytest.mark.parametrize(("name", "value"), [
    ("limit", "²"),
    ("limit", "⁵"),
    ("limit", "１"),
    ("limit", "٣"),
    ("added_after", "２０２６-01-01T00:00:00Z"),
    ("match[version]", "2026-01-01T00:00:00.٣Z"),
    ("limit", "1\u00a0"),
    ("added_after", "2026-01-01T00:00:00Z\n"),
])
def test_non_ascii_numbers_in_parameters_are_400(node: Node, name: str, value: str) -> None:
    # rules §5.1 (malformed → 400), §5.3 (limit is an integer), §1.11 (RFC 3339 digits are ASCII)
    response = node.session().get(objects_url(node), params={name: value})
    assert_taxii_error(response, 400)
    assert_alive(node)


def test_an_unknown_api_root_or_collection_is_a_404_naming_which(node: Node) -> None:
    # rules §4: a collection the token may not see, or that does not exist, is 404; the node says which of the
    # API root and the collection it did not find (the collection is looked up first, the root only then).
    session = node.session()
    unknown_root = assert_taxii_error(session.get(f"{node.base}/nope/collections/{node.collection}/objects/"), 404)
    assert "API root" in unknown_root["title"] + unknown_root.get("description", "")
    unknown = assert_taxii_error(session.get(f"{node.base}/main/collections/{uuid.uuid4()}/objects/"), 404)
    assert "collection" in unknown["title"] + unknown.get("description", "")
    assert "API root" not in unknown["title"] + unknown.get("description", "")
    assert_taxii(session.get(objects_url(node)))
