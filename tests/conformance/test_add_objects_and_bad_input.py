"""TAXII 2.1 rules §7 (add objects, status) and hostile or broken requests.

Every bad request must get a TAXII error object with the right status, never a 500, and
leave nothing half-written behind: after each one the server still answers and the
objects named in the bad request are absent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conformance.conftest import (
    ExtraCollection,
    assert_alive,
    assert_taxii,
    assert_taxii_error,
    compact,
    envelope_body,
    indicator,
    instant,
    make_collection,
    manifest_of,
    objects_url,
    post_raw,
    stored_versions,
)
from tests.conftest import TAXII, Node, kizuna_json

TINY_LIMIT = 2000


@pytest.fixture(scope="module")
def tiny(node: Node) -> ExtraCollection:
    """A collection in an API root whose max_content_length is 2000 bytes."""
    kizuna_json(node.data_dir, "api-roots", "create", "tiny", "--title", "T",
                "--max-content-length", str(TINY_LIMIT))
    return make_collection(node, "Tiny", api_root="tiny")


def _padded_envelope(obj: dict[str, Any], size: int) -> bytes:
    """An envelope of exactly ``size`` bytes holding ``obj`` with a padding property."""
    obj = dict(obj, x_padding="")
    base = len(envelope_body([obj]).encode())
    obj["x_padding"] = "p" * (size - base)
    body = envelope_body([obj]).encode()
    assert len(body) == size
    return body


def _tiny_ids(tiny: ExtraCollection, object_id: str) -> list[str]:
    response = tiny.session().get(tiny.url + "manifest/", params={"match[id]": object_id})
    return [r["id"] for r in assert_taxii(response).get("objects", [])]


# -- §7 add objects and status --------------------------------------------------------------

def test_add_returns_202_and_a_complete_status_that_can_be_polled(node: Node) -> None:
    # rules §7.2, §2 E8 (202), E3
    objs = [indicator(), indicator()]
    response = post_raw(node, envelope_body(objs))
    status = assert_taxii(response, 202)
    assert status["total_count"] == 2 and status["success_count"] == 2
    polled = assert_taxii(node.session().get(f"{node.api_root}status/{status['id']}/"))
    assert polled["status"] == "complete" and polled["pending_count"] == 0
    assert sorted((s["id"], instant(s["version"])) for s in polled["successes"]) == sorted(
        (o["id"], instant(o["modified"])) for o in objs
    )


def test_status_is_scoped_to_its_api_root(node: Node, tiny: ExtraCollection) -> None:
    # rules §3 status: an unknown status id in *this* API root → 404
    status = node.post([indicator()])
    assert_taxii_error(tiny.session().get(f"{node.base}/tiny/status/{status['id']}/"), 404)
    assert_taxii_error(node.session().get(f"{node.base}/tiny/status/{status['id']}/"), 404)


def test_status_belongs_to_the_principal_that_posted(node: Node) -> None:
    # rules §3 status + App. B: another principal's status is not revealed
    status = node.post([indicator()], token="writeonly")
    assert assert_taxii(node.session("writeonly").get(f"{node.api_root}status/{status['id']}/")) == status
    for token in ("reader", "outsider", "writer"):
        assert_taxii_error(node.session(token).get(f"{node.api_root}status/{status['id']}/"), 404)


def test_exact_duplicates_are_successes(node: Node) -> None:
    # rules §7.3
    obj = indicator()
    node.post([obj])
    again = node.post([obj])
    assert (again["success_count"], again["failure_count"], again["total_count"]) == (1, 0, 1)
    assert [s["id"] for s in again["successes"]] == [obj["id"]]
    both = node.post([obj, obj])
    assert (both["success_count"], both["failure_count"]) == (2, 0)
    assert len(manifest_of(node, [obj["id"]])) == 1


def test_same_version_with_different_content_fails_and_keeps_the_stored_one(node: Node) -> None:
    # rules §7.4 (per-object failure with a message), STIX §3.6 (same id+modified must be identical)
    original = indicator()
    node.post([original])
    impostor = dict(original, name="changed under the same modified")
    companion = indicator()
    status = node.post([impostor, companion])
    assert (status["total_count"], status["success_count"], status["failure_count"]) == (2, 1, 1)
    (failure,) = status["failures"]
    assert failure["id"] == original["id"] and failure["message"]
    assert instant(failure["version"]) == instant(original["modified"])
    assert [compact(o) for o in stored_versions(node, [original["id"]])] == [compact(original)]
    assert [r["id"] for r in manifest_of(node, [companion["id"]])] == [companion["id"]]


def test_conflicting_versions_inside_one_envelope(node: Node) -> None:
    # rules §7.3/§7.4 within a single request: the first wins, the different twin fails
    first = indicator()
    twin = dict(first, name="twin")
    status = node.post([first, twin])
    assert (status["success_count"], status["failure_count"]) == (1, 1)
    assert [compact(o) for o in stored_versions(node, [first["id"]])] == [compact(first)]


_INVALID_OBJECTS: list[tuple[str, Any]] = [
    ("missing pattern", {k: v for k, v in indicator().items() if k != "pattern"}),
    ("bad id", dict(indicator(), id="indicator--not-a-uuid")),
    ("id type mismatch", dict(indicator(), id=f"malware--{uuid.uuid4()}")),
    ("spec_version 2.0", dict(indicator(), spec_version="2.0")),
    ("modified before created", indicator(created="2026-02-01T00:00:00Z", modified="2026-01-01T00:00:00Z")),
    ("bad timestamp", indicator(created="2026-01-32T00:00:00Z")),
    ("not an object", "indicator"),
    ("number", 42),
    ("null", None),
    ("list", []),
    ("empty object", {}),
    ("no type", {k: v for k, v in indicator().items() if k != "type"}),
    ("empty list property", indicator(labels=[])),
]


def test_invalid_objects_are_reported_and_valid_ones_of_the_same_envelope_stored(node: Node) -> None:
    # rules §7.4, §7.5
    good = [indicator() for _ in range(3)]
    bad = [obj for _, obj in _INVALID_OBJECTS]
    mixed = [good[0], *bad[:5], good[1], *bad[5:], good[2]]
    status = assert_taxii(post_raw(node, json.dumps({"objects": mixed})), 202)
    assert status["total_count"] == len(mixed)
    assert status["success_count"] == 3 and status["failure_count"] == len(bad)
    assert status["success_count"] + status["failure_count"] + status["pending_count"] == status["total_count"]
    for failure in status["failures"]:
        assert isinstance(failure["message"], str) and failure["message"]
        assert "id" in failure and "version" in failure
    assert sorted(s["id"] for s in status["successes"]) == sorted(o["id"] for o in good)
    assert sorted(r["id"] for r in manifest_of(node, [o["id"] for o in good])) == sorted(o["id"] for o in good)
    named = [o["id"] for o in bad if isinstance(o, dict) and isinstance(o.get("id"), str)
             and o["id"].count("--") == 1 and len(o["id"]) > 40]
    assert manifest_of(node, named) == []


@pytest.mark.parametrize("body", [
    "[]", '"objects"', "42", "null", '{"objects": {}}', '{"objects": "indicator"}', '{"objects": 1}',
])
def test_bodies_that_are_not_envelopes_are_400_or_422(node: Node, body: str) -> None:
    # rules §7.1
    response = post_raw(node, body)
    assert response.status_code in (400, 422)
    assert_taxii_error(response, response.status_code)
    assert_alive(node)


def test_bundle_keys_around_objects_do_not_break_the_envelope(node: Node) -> None:
    # rules §3 envelope: a 2.0-style bundle wrapper still carries its objects
    obj = indicator()
    body = json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [obj]})
    status = assert_taxii(post_raw(node, body), 202)
    assert status["success_count"] == 1
    assert [r["id"] for r in manifest_of(node, [obj["id"]])] == [obj["id"]]


# -- malformed and hostile input ---------------------------------------------------------

def _malformed_bodies(obj: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    text = envelope_body([obj])
    yield "truncated", text[:-5].encode()
    yield "trailing garbage", (text + "}").encode()
    yield "single quotes", text.replace('"', "'").encode()
    yield "trailing comma", (text[:-2] + ",]}").encode()
    yield "NaN", text.replace('"stix"', "NaN").encode()
    yield "invalid utf-8", text.replace("conformance probe", "\udcff").encode("utf-8", "surrogateescape")
    yield "lone surrogate escape", text.replace("conformance probe", "\\ud800").encode()
    yield "empty body", b""
    yield "whitespace", b"   \n"
    yield "utf-16", text.encode("utf-16")
    yield "nul byte", text.encode()[:30] + b"\x00" + text.encode()[30:]
    yield "deep arrays", ("[" * 5000 + "]" * 5000).encode()
    yield "deep objects", ('{"a":' * 5000 + "1" + "}" * 5000).encode()
    yield "deep inside an object", text.replace('"conformance probe"', '[' * 5000 + ']' * 5000).encode()
    yield "deep objects inside an object", text.replace(
        '"conformance probe"', '{"a":' * 5000 + "1" + "}" * 5000).encode()


@pytest.mark.parametrize("case", [name for name, _ in _malformed_bodies(indicator())])
def test_malformed_json_is_400_and_stores_nothing(node: Node, case: str) -> None:
    # rules §7.1 (body must be an envelope), §1.9 (UTF-8 I-JSON)
    obj = indicator()
    body = dict(_malformed_bodies(obj))[case]
    response = post_raw(node, body)
    assert_taxii_error(response, 400)
    assert manifest_of(node, [obj["id"]]) == []
    assert_alive(node)


def test_integers_beyond_64_bits_are_kept_or_refused_never_altered(node: Node) -> None:
    # rules §3 envelope / STIX §3.6: what is stored is what was sent, or the object is refused
    obj = indicator()
    sent = envelope_body([obj]).replace('"name": "conformance probe"', '"x_big": 123456789012345678901234567890')
    status = assert_taxii(post_raw(node, sent), 202)
    if status["failure_count"] == 1:
        assert manifest_of(node, [obj["id"]]) == []
        return
    response = node.session().get(objects_url(node) + obj["id"] + "/")
    assert b'"x_big":123456789012345678901234567890' in response.content


def _nested(obj: dict[str, Any], depth: int) -> dict[str, Any]:
    """``obj`` with a property that makes arrays and objects nest ``depth`` levels, the object itself the first."""
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return dict(obj, x_deep=value)


def test_objects_nested_deeper_than_the_node_can_write_are_refused_for_that(node: Node) -> None:
    # orjson parses 1024 levels but writes 254: an object between the two parsed and was then refused as
    # "an integer outside the 64-bit range", which it does not hold. The deepest writable one is stored whole.
    deepest, deeper = _nested(indicator(), 254), _nested(indicator(), 255)
    status = assert_taxii(post_raw(node, envelope_body([deepest, deeper])), 202)
    assert status["success_count"] == 1 and [f["id"] for f in status["failures"]] == [deeper["id"]]
    assert status["failures"][0]["message"] == (
        "nests arrays and objects deeper than 254 levels, which this node cannot store or send back")
    assert manifest_of(node, [deeper["id"]]) == []
    response = node.session().get(objects_url(node) + deepest["id"] + "/")
    assert assert_taxii(response)["objects"] == [deepest]


def test_body_over_max_content_length_is_413_and_stores_nothing(node: Node, tiny: ExtraCollection) -> None:
    # rules §7.1, §3 api-root (a body ≤ max_content_length MUST NOT get 413)
    root = assert_taxii(tiny.session().get(f"{node.base}/tiny/"))
    assert root["max_content_length"] == TINY_LIMIT
    session = tiny.session()
    headers = {"Content-Type": TAXII}
    exact = indicator()
    response = session.post(tiny.url + "objects/", data=_padded_envelope(exact, TINY_LIMIT), headers=headers)
    assert assert_taxii(response, 202)["success_count"] == 1
    assert _tiny_ids(tiny, exact["id"]) == [exact["id"]]
    over = indicator()
    response = session.post(tiny.url + "objects/", data=_padded_envelope(over, TINY_LIMIT + 1), headers=headers)
    assert_taxii_error(response, 413)
    assert _tiny_ids(tiny, over["id"]) == []
    huge = indicator()
    response = session.post(tiny.url + "objects/", data=_padded_envelope(huge, 50 * TINY_LIMIT), headers=headers)
    assert_taxii_error(response, 413)
    assert _tiny_ids(tiny, huge["id"]) == []
    assert_alive(node)


def test_chunked_body_over_max_content_length_is_413(node: Node, tiny: ExtraCollection) -> None:
    # rules §7.1: no Content-Length to trust, the size is counted while reading
    obj = indicator()
    body = _padded_envelope(obj, 4 * TINY_LIMIT)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start:start + 500]

    response = tiny.session().post(tiny.url + "objects/", data=chunks(), headers={"Content-Type": TAXII})
    assert_taxii_error(response, 413)
    assert _tiny_ids(tiny, obj["id"]) == []
    small = indicator()
    body = envelope_body([small]).encode()
    response = tiny.session().post(tiny.url + "objects/", data=iter([body[:100], body[100:]]),
                                   headers={"Content-Type": TAXII})
    assert assert_taxii(response, 202)["success_count"] == 1
    assert_alive(node)


def test_bad_content_length_header_is_a_client_error(node: Node, tiny: ExtraCollection) -> None:
    # hostile input: a Content-Length that is not a number must not reach the parser
    prepared = requests.Request(
        "POST", tiny.url + "objects/", data=envelope_body([indicator()]),
        headers={"Content-Type": TAXII, "Accept": TAXII, "Authorization": f"Bearer {tiny.token}"},
    ).prepare()
    prepared.headers["Content-Length"] = "12abc"
    with requests.Session() as session:
        try:
            response = session.send(prepared)
        except requests.ConnectionError:
            response = None  # the HTTP layer may drop a request it cannot frame; that is fine too
    if response is not None:
        assert 400 <= response.status_code < 500
    assert_alive(node)


def test_many_objects_in_one_envelope_are_all_reported(node: Node) -> None:
    # rules §7.5: total_count = number of objects in the envelope, across internal batches
    objs = [indicator() for _ in range(1205)]
    objs[1100] = dict(objs[1100], spec_version="1.0")
    status = node.post(objs)
    assert (status["total_count"], status["success_count"], status["failure_count"]) == (1205, 1204, 1)
    assert status["failures"][0]["id"] == objs[1100]["id"]


def test_unicode_in_paths_and_queries_is_handled(node: Node) -> None:
    # hostile input: odd characters in path segments and query values → 4xx, never 500
    session = node.session()
    for url in (
        node.collection_url("日本") + "objects/",
        objects_url(node) + "indicator--%F0%9F%99%82/",
        objects_url(node) + "?match[type]=%E6%97%A5%E6%9C%AC",
        objects_url(node) + "?added_after=%00",
        objects_url(node) + "?limit=%EF%BC%91",  # a full-width digit one
        objects_url(node) + "?limit=99999999999999999999999999",
    ):
        response = session.get(url)
        assert 400 <= response.status_code < 500 or response.status_code == 200, (url, response.status_code)
        if response.status_code != 200:
            assert_taxii_error(response, response.status_code)
    # A limit past 64 bits asks for everything: a page of the server's largest size (§3.4), not a 400.
    assert session.get(objects_url(node) + "?limit=99999999999999999999999999").status_code == 200
    assert_alive(node)


def test_a_thousand_ids_in_match_id(node: Node) -> None:
    # rules §5.4: comma-separated values are ORed, however many a sync client sends
    objs = [indicator() for _ in range(3)]
    node.post(objs)
    ids = [f"indicator--{uuid.uuid4()}" for _ in range(997)] + [o["id"] for o in objs]
    response = node.session().get(objects_url(node), params={"match[id]": ",".join(ids)})
    assert [o["id"] for o in assert_taxii(response)["objects"]] == [o["id"] for o in objs]


def test_an_overlong_url_gets_a_taxii_error(node: Node) -> None:
    # rules §1.4: error responses carry the TAXII media type too, even for a request refused before routing
    ids = ",".join(f"indicator--{uuid.uuid4()}" for _ in range(2000))
    response = node.session().get(objects_url(node), params={"match[id]": ids})
    assert response.status_code == 414
    assert_taxii_error(response, response.status_code)
    assert_alive(node)
