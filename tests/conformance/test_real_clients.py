"""The real ecosystem clients against a running node: taxii2-client and python-stix2.

Each result a client gets is compared with what was sent and with what plain HTTP
returns, so a client-side workaround cannot hide a server fault.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests
import stix2
from stix2 import Filter, TAXIICollectionSink, TAXIICollectionSource
from taxii2client.exceptions import AccessError
from taxii2client.v21 import ApiRoot, Collection, Server, Status, as_pages

from tests.conformance.conftest import indicator, instant, manifest_of, stored_versions, versions_of
from tests.conftest import TAXII, Node


def _client_collection(node: Node, token: str = "writer") -> Collection:
    return Collection(node.collection_url(), user="analyst", password=node.tokens[token])


def test_server_and_api_root_resources(node: Node) -> None:
    server = Server(f"{node.base}/taxii2/", user="analyst", password=node.tokens["writer"])
    raw = requests.get(f"{node.base}/taxii2/", headers={"Accept": TAXII,
                                                        "Authorization": f"Bearer {node.tokens['writer']}"}).json()
    assert server.title == raw["title"]
    assert [r.url for r in server.api_roots] == [node.base + path for path in raw["api_roots"]]
    root = server.default
    assert isinstance(root, ApiRoot) and root.url == node.api_root
    assert root.title and TAXII in root.versions and root.max_content_length > 0
    by_id = {c.id: c for c in root.collections}
    shared = by_id[node.collection]
    assert (shared.title, shared.can_read, shared.can_write) == ("Shared indicators", True, True)
    assert shared.media_types == ["application/stix+json;version=2.1"]


def test_reader_client_sees_rights_and_cannot_write(node: Node) -> None:
    collection = _client_collection(node, "reader")
    assert (collection.can_read, collection.can_write) == (True, False)
    with pytest.raises(AccessError):
        collection.add_objects(json.dumps({"objects": [indicator()]}))


def test_add_objects_status_refresh_and_paging(node: Node) -> None:
    collection = _client_collection(node)
    sent = [indicator() for _ in range(5)]
    status = collection.add_objects(json.dumps({"objects": sent}))
    assert isinstance(status, Status)
    assert (status.status, status.total_count, status.success_count, status.failure_count) == ("complete", 5, 5, 0)
    again = Status(f"{node.api_root}status/{status.id}/", user="analyst", password=node.tokens["writer"])
    again.refresh()
    assert (again.id, again.status, again.success_count) == (status.id, "complete", 5)
    again.wait_until_final(poll_interval=0, timeout=5)
    assert again.status == "complete"
    ids = [o["id"] for o in sent]
    pages = list(as_pages(collection.get_objects, per_request=2, id=ids))
    assert [len(p.get("objects", [])) for p in pages] == [2, 2, 1]
    assert [o for p in pages for o in p.get("objects", [])] == sent
    manifests = list(as_pages(collection.get_manifest, per_request=3, id=ids))
    records = [r for p in manifests for r in p.get("objects", [])]
    assert records == manifest_of(node, ids)


def test_object_versions_get_and_delete(node: Node) -> None:
    collection = _client_collection(node)
    sent = versions_of(3)
    object_id = sent[0]["id"]
    collection.add_objects({"objects": sent})
    latest = collection.get_object(object_id)
    assert latest["objects"] == [sent[-1]]
    every = collection.get_object(object_id, version="all")
    assert every["objects"] == sent
    first = collection.get_object(object_id, version="first")
    assert first["objects"] == [sent[0]]
    versions = collection.object_versions(object_id)
    assert [instant(v) for v in versions["versions"]] == [instant(o["modified"]) for o in sent]
    collection.delete_object(object_id, version=sent[1]["modified"])
    assert stored_versions(node, [object_id]) == [sent[0], sent[2]]
    collection.delete_object(object_id)
    with pytest.raises(requests.HTTPError) as raised:
        collection.get_object(object_id)
    response = raised.value.response
    assert response is not None and response.status_code == 404
    assert stored_versions(node, [object_id]) == []


def _stix_indicator(**extra: Any) -> stix2.Indicator:
    return stix2.Indicator(
        id=f"indicator--{uuid.uuid4()}", pattern="[domain-name:value = 'example.test']", pattern_type="stix",
        valid_from="2026-01-01T00:00:00Z", created="2026-01-01T00:00:00.000Z",
        modified="2026-01-01T00:00:00.000Z", **extra,
    )


def test_stix2_sink_and_source(node: Node) -> None:
    collection = _client_collection(node)
    sink = TAXIICollectionSink(collection)
    source = TAXIICollectionSource(collection, items_per_page=2)
    first = _stix_indicator(name="first")
    second = first.new_version(modified="2026-01-02T00:00:00.000Z", name="second")
    other = _stix_indicator(name="other")
    sink.add([first, second, other])
    assert json.loads(first.serialize()) in stored_versions(node, [first.id])
    got = source.get(first.id)
    assert got is not None and got.id == first.id and got.name == "second"
    history = source.all_versions(first.id)
    assert sorted(str(o.modified) for o in history) == sorted([str(first.modified), str(second.modified)])
    found = source.query([Filter("id", "=", other.id)])
    assert [o.id for o in found] == [other.id] and found[0].name == "other"
    by_type = source.query([Filter("type", "=", "indicator"), Filter("id", "=", first.id)])
    assert [o.name for o in by_type] == ["second"]
    assert source.get(f"indicator--{uuid.uuid4()}") is None


def test_stix2_round_trip_equals_plain_http(node: Node) -> None:
    collection = _client_collection(node)
    made = [_stix_indicator(name=f"n{i}", labels=["probe"]) for i in range(3)]
    TAXIICollectionSink(collection).add(made)
    source = TAXIICollectionSource(collection, items_per_page=1)
    ids = [o.id for o in made]
    via_client = [source.get(i) for i in ids]
    via_http = stored_versions(node, ids)
    assert [json.loads(o.serialize()) for o in via_client] == via_http
