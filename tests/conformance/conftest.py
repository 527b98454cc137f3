"""Helpers and fixtures for the TAXII 2.1 conformance suite.

Every module shares one running node per backend (``node`` in ``tests/conftest.py``), so
each test makes its own objects with fresh UUIDs and only ever looks at those.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from kizuna.stix.timestamps import parse_timestamp
from tests.conftest import TAXII, Node, kizuna_json

TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
STIX_21 = "application/stix+json;version=2.1"


def stix_time(second: int = 0, micro: int = 0, day: int = 1) -> str:
    """A STIX timestamp in 2026, millisecond or microsecond precision."""
    minute, sec = divmod(second, 60)
    hour, minute = divmod(minute, 60)
    fraction = f"{micro:06d}" if micro % 1000 else f"{micro // 1000:03d}"
    return f"2026-01-{day:02d}T{hour:02d}:{minute:02d}:{sec:02d}.{fraction}Z"


def instant(text: str) -> int:
    """Microseconds since the epoch of a STIX/TAXII timestamp, whatever its precision."""
    return parse_timestamp(text)


def indicator(
    object_id: str | None = None, created: str | None = None, modified: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    created = created or stix_time()
    obj: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": object_id or f"indicator--{uuid.uuid4()}",
        "created": created,
        "modified": modified or created,
        "name": "conformance probe",
        "pattern": "[ipv4-addr:value = '203.0.113.7']",
        "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
    }
    obj.update(extra)
    return obj


def versions_of(count: int, object_id: str | None = None) -> list[dict[str, Any]]:
    """``count`` versions of one indicator, oldest first, one second apart."""
    object_id = object_id or f"indicator--{uuid.uuid4()}"
    created = stix_time(0)
    return [indicator(object_id, created, stix_time(i)) for i in range(count)]


def envelope_body(objects: list[Any]) -> str:
    return json.dumps({"objects": objects})


def assert_taxii_error(response: requests.Response, status: int) -> dict[str, Any]:
    """A TAXII error object (§3.6.1) with the given HTTP status."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == TAXII
    body = response.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("title"), str) and body["title"]
    assert body.get("http_status") == str(status)
    return body


def assert_taxii(response: requests.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == TAXII
    return response.json() if response.content else None


def assert_alive(node: Node) -> None:
    """The server still answers a normal request after whatever came before."""
    response = node.session().get(node.api_root)
    assert_taxii(response)


def objects_url(node: Node, collection: str | None = None) -> str:
    return node.collection_url(collection) + "objects/"


def stored_versions(node: Node, ids: Iterable[str], collection: str | None = None) -> list[dict[str, Any]]:
    """Every stored version of ``ids`` in a collection, as the writer sees them."""
    response = node.session().get(
        objects_url(node, collection),
        params={"match[id]": ",".join(ids), "match[version]": "all", "limit": "10000"},
    )
    body = assert_taxii(response)
    return list(body.get("objects", []))


def manifest_of(node: Node, ids: Iterable[str], version: str = "all", token: str = "writer") -> list[dict[str, Any]]:
    response = node.session(token).get(
        node.collection_url() + "manifest/",
        params={"match[id]": ",".join(ids), "match[version]": version, "limit": "10000"},
    )
    return list(assert_taxii(response).get("objects", []))


def post_raw(node: Node, body: str | bytes, token: str = "writer", collection: str | None = None,
             headers: dict[str, str] | None = None) -> requests.Response:
    return node.session(token).post(
        objects_url(node, collection), data=body, headers={"Content-Type": TAXII, **(headers or {})}
    )


def ordered_json(text: str | bytes) -> Any:
    """Parse JSON keeping key order and exact number text (for byte-level comparisons)."""
    return json.loads(text, parse_float=str, parse_int=str)


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def page_through(
    session: requests.Session, url: str, params: dict[str, str], use_next: bool = True,
    max_pages: int = 1000,
) -> Iterator[requests.Response]:
    """Every page of a paged TAXII endpoint, following ``next`` or X-TAXII-Date-Added-Last."""
    query = dict(params)
    for _ in range(max_pages):
        response = session.get(url, params=query)
        assert response.status_code == 200, response.text
        yield response
        body = response.json()
        if not body.get("more"):
            return
        query = dict(params)
        if use_next and "next" in body:
            query["next"] = body["next"]
        else:
            query["added_after"] = response.headers["X-TAXII-Date-Added-Last"]
    raise AssertionError("paging did not finish")


@dataclass
class ExtraCollection:
    """A collection made for one module, with a read-write token of its own."""

    node: Node
    id: str
    api_root: str
    token: str
    token_id: str

    @property
    def url(self) -> str:
        return f"{self.node.base}/{self.api_root}/collections/{self.id}/"

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update({"Accept": TAXII, "Authorization": f"Bearer {self.token}"})
        return session


def make_collection(node: Node, title: str, api_root: str = "main") -> ExtraCollection:
    created = kizuna_json(node.data_dir, "collections", "create", "--title", title, "--api-root", api_root)
    token = kizuna_json(node.data_dir, "tokens", "create", "--org", "NCSC UK",
                        "--read", created["id"], "--write", created["id"])
    return ExtraCollection(node, created["id"], api_root, token["token"], token["id"])


@pytest.fixture(scope="module")
def fresh_collection(node: Node) -> ExtraCollection:
    """An empty collection of this module's own, so a test can read *everything* in it."""
    return make_collection(node, f"Conformance {uuid.uuid4()}")
