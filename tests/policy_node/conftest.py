"""A running node with partner organisations, agreements and tokens for the policy tests.

NCSC UK (GBR) runs the node and produces the content; JPCERT/CC (JPN) reads under an
agreement up to TLP:AMBER; ACSC (AUS) reads under an agreement up to TLP:GREEN.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kizuna.policy import TLP2_IDS, TlpLevel, build_recipients_marking, build_rel_to_marking
from tests.conftest import BACKENDS, Node, create_pg_database, kizuna_json, make_node

CLEAR, GREEN, AMBER, AMBER_STRICT, RED = (TLP2_IDS[level] for level in TlpLevel)


@dataclass
class World:
    node: Node
    uk: str  # identity ids
    jp: str
    au: str

    def objects(self, token: str, **params: Any) -> list[dict[str, Any]]:
        """Every object ``token`` can page out of the shared collection (following ``next``)."""
        found: list[dict[str, Any]] = []
        session = self.node.session(token)
        query = {"match[version]": "all", **params}
        while True:
            response = session.get(self.node.collection_url() + "objects/", params=query)
            assert response.status_code == 200, response.text
            body = response.json()
            found += body.get("objects", [])
            if not body.get("more"):
                return found
            query = {**query, "next": body["next"]}


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("policy-node")
    database = create_pg_database() if request.param == "postgresql" else None
    node = make_node(request.param, base, database.url if database else None)
    try:
        data = node.data_dir
        kizuna_json(data, "orgs", "create", "ACSC", "--country", "AUS")
        orgs = {o["name"]: o["id"] for o in kizuna_json(data, "orgs", "list")["organisations"]}
        kizuna_json(data, "agreements", "set", "uk-jp", "--partner", "JPCERT/CC", "--max-tlp", "amber")
        kizuna_json(data, "agreements", "set", "uk-au", "--partner", "ACSC", "--max-tlp", "green")
        node.tokens["au"] = kizuna_json(data, "tokens", "create", "--org", "ACSC", "--read", "shared")["token"]
        node.tokens["jp_sync"] = kizuna_json(
            data, "tokens", "create", "--org", "JPCERT/CC", "--read", "shared", "--agreement", "uk-jp"
        )["token"]
        yield World(node, orgs["NCSC UK"], orgs["JPCERT/CC"], orgs["ACSC"])
    finally:
        node.server.stop()
        if database:
            database.drop()


def sdo(stix_type: str, producer: str, markings: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{uuid.uuid4()}",
        "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z",
        "created_by_ref": producer,
    }
    if markings:
        obj["object_marking_refs"] = markings
    if stix_type == "indicator":
        obj.update(pattern="[ipv4-addr:value = '198.51.100.7']", pattern_type="stix",
                   valid_from="2026-03-01T00:00:00Z", name="Scanner")
    elif stix_type == "report":
        obj.update(name="Report", published="2026-03-01T00:00:00Z", object_refs=extra.pop("object_refs"))
    elif stix_type == "note":
        obj.update(content="Note content", object_refs=extra.pop("object_refs"))
    elif stix_type == "malware":
        obj.update(name="Implant", is_family=False)
    obj.update(extra)
    return obj


def relationship(producer: str, source: str, target: str, markings: list[str] | None = None) -> dict[str, Any]:
    return sdo("relationship", producer, markings, relationship_type="indicates", source_ref=source,
               target_ref=target)


__all__ = ["AMBER", "AMBER_STRICT", "CLEAR", "GREEN", "RED", "World", "build_recipients_marking",
           "build_rel_to_marking", "relationship", "sdo"]
