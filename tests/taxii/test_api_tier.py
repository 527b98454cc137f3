"""Several `kizuna serve` processes on one PostgreSQL behave as one node (the scaling issue's API tier).

A load balancer may send each request of a client to a different process. Everything a client carries
from one request to the next must therefore live in the shared store or be signed with the node's key:
paging cursors (HMAC with the key in the node's configuration), status resources (rows in the store),
and what one process wrote must be served at once by the others.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from itertools import cycle
from typing import Any

import pytest
import requests

from tests.conftest import TAXII, ServerProcess, create_pg_database, make_node, start_server


def _indicator(number: int) -> dict[str, Any]:
    return {
        "type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
        "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
        "name": f"tier {number}", "pattern": f"[ipv4-addr:value = '203.0.113.{number % 250}']",
        "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z",
    }


@pytest.fixture(scope="module")
def tier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[ServerProcess]]]:
    """Three processes started from the same data directory, so the same store URL and keys."""
    database = create_pg_database()
    node = make_node("postgresql", tmp_path_factory.mktemp("tier"), database.url)
    others = [start_server(node.data_dir, sync=False) for _ in range(2)]
    try:
        yield node, [node.server, *others]
    finally:
        for process in others:
            process.stop()
        node.server.stop()
        database.drop()


def _session(token: str) -> requests.Session:
    session = requests.Session()
    session.headers.update({"Accept": TAXII, "Authorization": f"Bearer {token}"})
    return session


def test_a_client_pages_across_three_processes_without_gaps_or_repeats(tier: Any) -> None:
    node, processes = tier
    writer = _session(node.tokens["writer"])
    sent = [_indicator(number) for number in range(120)]
    for start, process in zip(range(0, 120, 40), cycle(processes)):  # each process takes a third
        response = writer.post(f"{process.base}/main/collections/{node.collection}/objects/",
                               data=json.dumps({"objects": sent[start:start + 40]}),
                               headers={"Content-Type": TAXII})
        assert response.status_code == 202 and response.json()["success_count"] == 40
    reader = _session(node.tokens["reader"])
    received: list[str] = []
    cursor: str | None = None
    pages = 0
    for process in cycle(processes):  # the next page from the next process, as a balancer might
        params = {"limit": "25", "match[type]": "indicator", **({"next": cursor} if cursor else {})}
        response = reader.get(f"{process.base}/main/collections/{node.collection}/objects/", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        received += [o["id"] for o in body.get("objects", [])]
        pages += 1
        if not body.get("more"):
            break
        cursor = body["next"]
    wanted = [o["id"] for o in sent]
    assert [i for i in received if i in set(wanted)] == wanted  # every object once, in the order added
    assert pages >= 5


def test_a_status_created_by_one_process_is_served_by_the_others(tier: Any) -> None:
    node, processes = tier
    writer = _session(node.tokens["writer"])
    posted = writer.post(f"{processes[0].base}/main/collections/{node.collection}/objects/",
                         data=json.dumps({"objects": [_indicator(7)]}), headers={"Content-Type": TAXII})
    assert posted.status_code == 202
    status = posted.json()
    for process in processes[1:]:
        again = writer.get(f"{process.base}/main/status/{status['id']}/")
        assert again.status_code == 200
        assert again.json()["id"] == status["id"] and again.json()["success_count"] == 1

