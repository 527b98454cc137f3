"""TAXII 2.1 rules §1 (transport, auth, media types), §2 (endpoints) and §3 (resource shapes)."""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from typing import Any

import pytest
import requests

from tests.conformance.conftest import (
    STIX_21,
    TIMESTAMP_RE,
    assert_alive,
    assert_taxii,
    assert_taxii_error,
    envelope_body,
    indicator,
    instant,
    manifest_of,
    objects_url,
    post_raw,
)
from tests.conftest import TAXII, Node, kizuna_json


def _all_endpoints(node: Node, object_id: str, status_id: str) -> list[str]:
    collection = node.collection_url()
    return [
        f"{node.base}/taxii2/",
        node.api_root,
        f"{node.api_root}status/{status_id}/",
        f"{node.api_root}collections/",
        collection,
        collection + "manifest/",
        collection + "objects/",
        collection + f"objects/{object_id}/",
        collection + f"objects/{object_id}/versions/",
    ]


@pytest.fixture(scope="module")
def published(node: Node) -> tuple[dict[str, Any], dict[str, Any]]:
    obj = indicator()
    return obj, node.post([obj])


# -- §1 transport, auth, media types ----------------------------------------------------

def test_every_endpoint_answers_with_the_taxii_media_type(node: Node, published: Any) -> None:
    # rules §1.4 (success responses), §2 E1-E7, E9, E11 (success codes)
    obj, status = published
    session = node.session()
    for url in _all_endpoints(node, obj["id"], status["id"]):
        response = session.get(url)
        assert_taxii(response, 200)


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic !!!not-base64", "Token abc"])
def test_missing_or_bad_credentials_get_401_with_challenge_everywhere(
    node: Node, published: Any, authorization: str | None
) -> None:
    # rules §1.3, §1.4 (error responses carry the media type)
    obj, status = published
    headers = {"Accept": TAXII}
    if authorization:
        headers["Authorization"] = authorization
    for url in _all_endpoints(node, obj["id"], status["id"]):
        response = requests.get(url, headers=headers)
        assert_taxii_error(response, 401)
        assert response.headers.get("WWW-Authenticate")
    response = requests.post(objects_url(node), data=envelope_body([indicator()]),
                             headers={**headers, "Content-Type": TAXII})
    assert_taxii_error(response, 401)
    assert response.headers.get("WWW-Authenticate")


def test_revoked_token_gets_401_immediately(node: Node) -> None:
    # rules §1.3: a revoked credential is an invalid one
    created = kizuna_json(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", node.collection)
    headers = {"Accept": TAXII, "Authorization": f"Bearer {created['token']}"}
    assert_taxii(requests.get(objects_url(node), headers=headers, params={"limit": "1"}))
    kizuna_json(node.data_dir, "tokens", "revoke", created["id"])
    response = requests.get(objects_url(node), headers=headers, params={"limit": "1"})
    assert_taxii_error(response, 401)
    assert response.headers.get("WWW-Authenticate")


@pytest.mark.parametrize("order", ["valid first", "bad first"])
def test_two_authorization_headers_get_401_whichever_comes_first(node: Node, order: str) -> None:
    # rules §1.3. 401, not 400: it is the answer of the existing authentication failure path to credentials it
    # cannot use (no header, an unknown scheme, Basic that is not base64), with the challenge, so a client
    # learns the one thing it must change. Taking the first header, as before, let a valid token ride past
    # whatever added or checked the other.
    valid, bad = f"Bearer {node.tokens['writer']}", "Bearer bad"
    paths = [objects_url(node).removeprefix(node.base) + "?limit=1", "/taxii2/", f"/feeds/{uuid.uuid4()}.txt"]
    for path in paths:
        connection = http.client.HTTPConnection("127.0.0.1", node.server.port, timeout=30)
        try:
            connection.putrequest("GET", path)
            connection.putheader("Accept", TAXII)
            for value in ([valid, bad] if order == "valid first" else [bad, valid]):
                connection.putheader("Authorization", value)
            connection.endheaders()
            response = connection.getresponse()
            body = json.loads(response.read())
        finally:
            connection.close()
        assert response.status == 401 and response.getheader("Content-Type") == TAXII, (path, body)
        assert response.getheader("WWW-Authenticate")
        assert body["http_status"] == "401" and "one Authorization header" in body["description"], body
    # One of them alone is answered as ever.
    assert_taxii(requests.get(objects_url(node), headers={"Accept": TAXII, "Authorization": valid},
                              params={"limit": "1"}))


def test_http_basic_with_the_token_as_password(node: Node) -> None:
    # rules §1.2: HTTP Basic SHOULD be implemented
    good = base64.b64encode(f"analyst:{node.tokens['reader']}".encode()).decode()
    response = requests.get(node.api_root, headers={"Accept": TAXII, "Authorization": f"Basic {good}"})
    assert_taxii(response)
    bad = base64.b64encode(b"analyst:wrong").decode()
    response = requests.get(node.api_root, headers={"Accept": TAXII, "Authorization": f"Basic {bad}"})
    assert_taxii_error(response, 401)


@pytest.mark.parametrize("accept", [
    TAXII, "application/taxii+json", "application/taxii+json; version=2.1", "*/*",
    "application/json, application/taxii+json;version=2.1;q=0.5",
])
def test_defined_accept_types_succeed(node: Node, accept: str) -> None:
    # rules §1.5: TX and versionless TAXII media type succeed, never 406
    session = node.session()
    for url in (f"{node.base}/taxii2/", node.api_root, objects_url(node)):
        response = session.get(url, headers={"Accept": accept}, params={"limit": "1"})
        assert_taxii(response)


def test_missing_accept_header_is_served(node: Node) -> None:
    # rules §1.5 (a client that states no preference takes any type)
    session = node.session()
    del session.headers["Accept"]
    assert_taxii(session.get(node.api_root))


@pytest.mark.parametrize("accept", [
    "application/json", "application/stix+json;version=2.1", "application/taxii+json;version=2.0",
    "text/html", "application/taxii+json;q=0",
])
def test_undefined_accept_types_get_406(node: Node, accept: str) -> None:
    # rules §1.5: an undefined media type MAY produce 406 (this server does, on every endpoint)
    session = node.session()
    for url in (f"{node.base}/taxii2/", node.api_root, objects_url(node), node.collection_url() + "manifest/"):
        assert_taxii_error(session.get(url, headers={"Accept": accept}), 406)
    assert_alive(node)


@pytest.mark.parametrize("content_type", [
    TAXII, "application/taxii+json", "application/taxii+json; version=2.1",
    "application/taxii+json;version=2.1;charset=utf-8",
])
def test_defined_content_types_are_accepted(node: Node, content_type: str) -> None:
    # rules §1.6: a defined Content-Type MUST NOT get 415
    obj = indicator()
    response = post_raw(node, envelope_body([obj]), headers={"Content-Type": content_type})
    status = assert_taxii(response, 202)
    assert status["success_count"] == 1


@pytest.mark.parametrize("content_type", [
    None, "application/json", "text/plain", "application/stix+json;version=2.1",
    "application/taxii+json;version=2.0", "application/x-www-form-urlencoded",
])
def test_wrong_or_missing_content_type_gets_415_and_stores_nothing(node: Node, content_type: str | None) -> None:
    # rules §1.6, §7.1: undefined Content-Type MAY get 415 (this server does)
    obj = indicator()
    session = node.session()
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = session.post(objects_url(node), data=envelope_body([obj]).encode(), headers=headers)
    assert_taxii_error(response, 415)
    assert manifest_of(node, [obj["id"]]) == []
    assert_alive(node)


def test_post_with_wrong_accept_gets_406_and_stores_nothing(node: Node) -> None:
    # rules §1.6: POST needs a valid Accept as well as Content-Type
    obj = indicator()
    response = post_raw(node, envelope_body([obj]), headers={"Accept": "application/json"})
    assert_taxii_error(response, 406)
    assert manifest_of(node, [obj["id"]]) == []


@pytest.mark.parametrize("path", ["/taxii2", "/main", "/main/collections", "/main/collections/shared"])
def test_paths_without_trailing_slash_redirect_to_the_slash_url(node: Node, path: str) -> None:
    # rules §1.7: decided behaviour: a redirect to the same path with the slash, nothing served at the bare path
    response = node.session().get(node.base + path, allow_redirects=False)
    assert response.status_code in (301, 307, 308), response.status_code
    assert response.headers["Location"].endswith(path + "/")
    followed = node.session().get(node.base + path)
    assert_taxii(followed)


def test_post_without_trailing_slash_is_not_silently_lost(node: Node) -> None:
    # rules §1.7: a redirect that keeps the method (307/308), so a retried POST still lands
    obj = indicator()
    response = node.session().post(
        objects_url(node).rstrip("/"), data=envelope_body([obj]), headers={"Content-Type": TAXII},
        allow_redirects=False,
    )
    assert response.status_code in (307, 308)
    assert manifest_of(node, [obj["id"]]) == []


def test_missing_user_agent_is_not_rejected(node: Node) -> None:
    # rules §1.8
    response = node.session().get(node.api_root, headers={"User-Agent": None})  # type: ignore[dict-item]
    assert_taxii(response)


def test_property_names_are_case_sensitive(node: Node) -> None:
    # rules §1.9: "Objects" is not "objects"; nothing is stored from it
    obj = indicator()
    response = post_raw(node, '{"Objects": [' + envelope_body([obj])[12:-1] + "]}")
    status = assert_taxii(response, 202)
    assert status["total_count"] == 0
    assert manifest_of(node, [obj["id"]]) == []


def test_timestamps_are_microsecond_utc(node: Node) -> None:
    # rules §1.11: date_added, request_timestamp, versions and both headers
    obj = indicator(created="2026-01-01T00:00:00Z", modified="2026-01-02T00:00:00.1Z")
    status = node.post([obj])
    assert TIMESTAMP_RE.match(status["request_timestamp"])
    # status/manifest/versions "version" is the STIX modified as a string: compare instants
    assert [instant(s["version"]) for s in status["successes"]] == [instant(obj["modified"])]
    session = node.session()
    response = session.get(node.collection_url() + "manifest/", params={"match[id]": obj["id"]})
    record = assert_taxii(response)["objects"][0]
    assert TIMESTAMP_RE.match(record["date_added"])
    assert instant(record["version"]) == instant(obj["modified"])
    for header in ("X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last"):
        assert TIMESTAMP_RE.match(response.headers[header])
    assert TIMESTAMP_RE.match(record["version"])
    versions = assert_taxii(session.get(objects_url(node) + obj["id"] + "/versions/"))
    assert [instant(v) for v in versions["versions"]] == [instant(obj["modified"])]
    assert all(TIMESTAMP_RE.match(v) for v in versions["versions"])


@pytest.mark.parametrize("added_after", [
    "2020-01-01T00:00:00Z", "2020-01-01T00:00:00.1Z", "2020-01-01T00:00:00.12345Z",
    "2020-01-01T00:00:00.123456789Z", "2020-01-01T00:00:00+00:00",
])
def test_added_after_is_read_leniently(node: Node, added_after: str) -> None:
    # rules §1.11: strict on output, lenient on input
    obj = indicator()
    node.post([obj])
    response = node.session().get(objects_url(node), params={"match[id]": obj["id"], "added_after": added_after})
    assert [o["id"] for o in assert_taxii(response)["objects"]] == [obj["id"]]


def test_unknown_custom_properties_are_kept(node: Node) -> None:
    # rules §1.12: a server MAY ignore unknown custom properties; this one stores them as sent
    obj = indicator(x_acme_score=7, x_acme_tags={"source": "honeypot"})
    status = node.post([obj])
    assert status["success_count"] == 1
    got = assert_taxii(node.session().get(objects_url(node) + obj["id"] + "/"))["objects"][0]
    assert got["x_acme_score"] == 7 and got["x_acme_tags"] == {"source": "honeypot"}


def test_invalid_custom_property_names_are_reported_per_object(node: Node) -> None:
    # rules §1.12: names are ASCII [a-z0-9_], 3-250 characters
    bad = [{**indicator(), "X-Upper": 1}, indicator(xy=1), {**indicator(), "x_" + "a" * 250: 1}]
    status = node.post(bad)
    assert status["failure_count"] == 3 and status["success_count"] == 0
    assert all(f["message"] for f in status["failures"])
    assert manifest_of(node, [o["id"] for o in bad]) == []


# -- §3 resource shapes ------------------------------------------------------------------

def test_discovery_resource(node: Node) -> None:
    # rules §2 E1, §3 discovery
    body = assert_taxii(node.session().get(f"{node.base}/taxii2/"))
    assert isinstance(body["title"], str)
    roots = body["api_roots"]
    assert roots and body["default"] in roots
    for root in roots:
        assert root.startswith("/") and not root.startswith("//") and not root.startswith("../")
        assert "?" not in root and root.endswith("/")
        assert_taxii(node.session().get(node.base + root))
    assert "/main/" in roots


def test_api_root_resource(node: Node) -> None:
    # rules §2 E2, §3 api-root
    body = assert_taxii(node.session().get(node.api_root))
    assert isinstance(body["title"], str) and "display_name" not in body
    assert TAXII in body["versions"]
    assert isinstance(body["max_content_length"], int) and body["max_content_length"] > 0


def test_unknown_api_root_is_404(node: Node) -> None:
    # rules §2 E2 failure codes
    assert_taxii_error(node.session().get(f"{node.base}/no-such-root-{uuid.uuid4().hex[:8]}/"), 404)
    assert_taxii_error(node.session().get(f"{node.base}/no-such-root/collections/"), 404)
    # rules §2: channels are reserved and not served
    assert_taxii_error(node.session().get(f"{node.api_root}channels/"), 404)


def test_collections_resource_is_per_requester_and_stably_ordered(node: Node) -> None:
    # rules §3 collections (consistent order, sorted by id per the interop profile), collection
    bodies = [assert_taxii(node.session().get(node.api_root + "collections/")) for _ in range(3)]
    assert bodies[0] == bodies[1] == bodies[2]
    found = bodies[0]["collections"]
    ids = [c["id"] for c in found]
    assert ids == sorted(ids)
    assert {node.collection, node.other_collection} <= set(ids)
    for entry in found:
        assert uuid.UUID(entry["id"]).version == 4
        assert isinstance(entry["title"], str)
        assert isinstance(entry["can_read"], bool) and isinstance(entry["can_write"], bool)
        assert entry.get("media_types", [STIX_21])
    shared = next(c for c in found if c["id"] == node.collection)
    assert (shared["can_read"], shared["can_write"], shared["alias"]) == (True, True, "shared")
    expected = {"reader": (True, False), "writeonly": (False, True)}
    for token, rights in expected.items():
        listing = assert_taxii(node.session(token).get(node.api_root + "collections/"))["collections"]
        mine = next(c for c in listing if c["id"] == node.collection)
        assert (mine["can_read"], mine["can_write"]) == rights
        single = assert_taxii(node.session(token).get(node.collection_url()))
        assert (single["can_read"], single["can_write"]) == rights


def test_zero_collections_is_an_empty_object(node: Node) -> None:
    # rules §1.10: zero collections → {}
    lonely = kizuna_json(node.data_dir, "orgs", "create", f"Lonely {uuid.uuid4()}")
    # A token needs a right somewhere: this one reads only a collection of another API root.
    elsewhere = f"lonely-{uuid.uuid4().hex[:8]}"
    kizuna_json(node.data_dir, "api-roots", "create", elsewhere, "--title", "Elsewhere")
    far = kizuna_json(node.data_dir, "collections", "create", "--title", "Far", "--api-root", elsewhere)["id"]
    token = kizuna_json(node.data_dir, "tokens", "create", "--org", lonely["name"], "--read", far)["token"]
    headers = {"Accept": TAXII, "Authorization": f"Bearer {token}"}
    response = requests.get(node.api_root + "collections/", headers=headers)
    assert assert_taxii(response) == {}
    assert response.text.strip() == "{}"


def test_collection_alias_is_usable_in_place_of_the_id(node: Node) -> None:
    # rules §3 collection: alias usable in the path
    session = node.session()
    by_id = assert_taxii(session.get(node.collection_url()))
    by_alias = assert_taxii(session.get(node.collection_url("shared")))
    assert by_id == by_alias and by_id["id"] == node.collection
    obj = indicator()
    node.post([obj], collection="shared")
    assert [r["id"] for r in manifest_of(node, [obj["id"]])] == [obj["id"]]


def test_manifest_record_shape(node: Node) -> None:
    # rules §3 manifest
    obj = indicator()
    node.post([obj])
    body = assert_taxii(node.session().get(node.collection_url() + "manifest/", params={"match[id]": obj["id"]}))
    assert body.get("more", False) is False
    (record,) = body["objects"]
    assert record["id"] == obj["id"]
    assert TIMESTAMP_RE.match(record["date_added"])
    assert instant(record["version"]) == instant(obj["modified"])
    collection = assert_taxii(node.session().get(node.collection_url()))
    assert record.get("media_type", STIX_21) in collection.get("media_types", [STIX_21])


def test_envelope_shape_has_no_bundle_keys(node: Node) -> None:
    # rules §3 envelope: no type/id/spec_version; objects always wrapped
    obj = indicator()
    node.post([obj])
    for url in (objects_url(node), objects_url(node) + obj["id"] + "/"):
        body = assert_taxii(node.session().get(url, params={"match[id]": obj["id"]}))
        assert set(body) <= {"more", "next", "objects"}
        assert isinstance(body["objects"], list) and body["objects"][0]["id"] == obj["id"]
        assert isinstance(body.get("more", False), bool)


def test_status_resource_shape_and_retrieval(node: Node) -> None:
    # rules §2 E3, §3 status, §7.2, §7.5
    good, bad = indicator(), indicator(pattern_type=None)
    sent = node.post([good, bad])
    assert uuid.UUID(sent["id"])
    assert sent["status"] in ("complete", "pending")
    for key in ("total_count", "success_count", "failure_count", "pending_count"):
        assert isinstance(sent[key], int) and sent[key] >= 0
    assert sent["total_count"] == 2
    assert sent["success_count"] + sent["failure_count"] + sent["pending_count"] == sent["total_count"]
    for entry in sent.get("successes", []) + sent.get("failures", []) + sent.get("pendings", []):
        assert entry["id"] and entry["version"]
    fetched = assert_taxii(node.session().get(f"{node.api_root}status/{sent['id']}/"))
    assert fetched["id"] == sent["id"] and fetched["status"] == "complete"
    assert fetched == sent


def test_status_of_another_principal_and_unknown_status_are_404(node: Node) -> None:
    # rules §3 status (unknown → 404), App. B (no leak): another principal's status is as unknown
    sent = node.post([indicator()])
    unknown = assert_taxii_error(node.session().get(f"{node.api_root}status/{uuid.uuid4()}/"), 404)
    other = assert_taxii_error(node.session("reader").get(f"{node.api_root}status/{sent['id']}/"), 404)
    assert other == unknown
    assert_taxii_error(node.session().get(f"{node.api_root}status/not-a-uuid/"), 404)


def test_error_bodies_do_not_reveal_inaccessible_collections(node: Node) -> None:
    # rules §3 error: no leak of what exists (App. B)
    session = node.session("outsider")
    hidden = session.get(node.collection_url())
    missing = session.get(node.collection_url(str(uuid.uuid4())))
    assert assert_taxii_error(hidden, 404) == assert_taxii_error(missing, 404)
    for suffix in ("manifest/", "objects/"):
        hidden_body = assert_taxii_error(session.get(node.collection_url() + suffix), 404)
        missing_body = assert_taxii_error(session.get(node.collection_url(str(uuid.uuid4())) + suffix), 404)
        assert hidden_body == missing_body


def test_unsupported_methods_get_a_taxii_error(node: Node) -> None:
    # rules §1.4: error responses are TAXII JSON too
    session = node.session()
    for method, url in (("PUT", objects_url(node)), ("DELETE", node.collection_url()), ("PATCH", node.api_root)):
        response = session.request(method, url)
        assert_taxii_error(response, 405)
    assert_alive(node)


def test_echoed_date_headers_keep_the_four_digit_year(node: Node) -> None:
    # rules §1.11: X-TAXII-Date-Added-* are YYYY-MM-DDTHH:MM:SS.ssssssZ
    response = node.session().get(objects_url(node), params={
        "match[id]": f"indicator--{uuid.uuid4()}", "added_after": "0001-01-01T00:00:00Z",
    })
    assert_taxii(response)
    for header in ("X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last"):
        assert TIMESTAMP_RE.match(response.headers[header]), response.headers[header]


def test_status_retention_is_at_least_a_day(node: Node) -> None:
    # rules §3 status: statuses SHOULD stay queryable ≥ 24 h (a MUST in the interop profile)
    from kizuna.config import load_config

    assert load_config(node.data_dir).status_retention_hours >= 24
