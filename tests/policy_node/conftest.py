"""A running node with partner organisations, agreements and tokens for the policy tests.

NCSC UK (GBR) runs the node and produces the content; JPCERT/CC (JPN) reads under an
agreement up to TLP:AMBER; ACSC (AUS) reads under an agreement up to TLP:GREEN.

The node is configured through the Python API (``kizuna.core.node.Node``) on the same store
the server reads, which is much faster than one ``kizuna`` process per step; every read the
tests check goes over HTTP to a real ``kizuna serve``.  One node per backend serves the whole
package: tests scope themselves with ``match[id]`` and their own organisations.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kizuna.cli import cli
from kizuna.core.node import Node as CoreNode
from kizuna.policy import TLP2_IDS, TlpLevel, build_recipients_marking, build_rel_to_marking
from tests.conftest import BACKENDS, Node, create_pg_database, start_server

CLEAR, GREEN, AMBER, AMBER_STRICT, RED = (TLP2_IDS[level] for level in TlpLevel)


def run_cli(data_dir: Path, *args: str, check: bool = True) -> tuple[int, str]:
    """Run a ``kizuna`` command in this process (the real command code, without a new interpreter)."""
    result = CliRunner().invoke(cli, ["--data", str(data_dir), *args])
    if check and result.exit_code != 0:
        raise AssertionError(f"kizuna {' '.join(args)} failed ({result.exit_code}):\n{result.output}")
    return result.exit_code, result.stdout


def cli_json(data_dir: Path, *args: str) -> Any:
    return json.loads(run_cli(data_dir, *args, "--json")[1])


@dataclass
class World:
    node: Node
    core: CoreNode  # the same store, for configuration and for reading the audit log
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

    def organisation(self, name: str, country: str | None = None) -> str:
        return str(self.core.create_organisation(name, country)["id"])

    def token(self, name: str, organisation: str, agreement: str | None = None) -> str:
        """A read token on the shared collection, registered under ``name`` for ``node.session``."""
        _, secret = self.core.create_token(organisation, read=["shared"], agreement=agreement)
        self.node.tokens[name] = secret
        return secret


def _start(backend: str, base: Path, store_url: str | None) -> tuple[Node, CoreNode, dict[str, str]]:
    data_dir = base / f"node-{backend}"
    core = CoreNode.init(data_dir, store_url, org_name="NCSC UK", country="GBR")
    shared = core.create_collection("Shared indicators", alias="shared",
                                    description="Indicators shared under the pact").id
    other = core.create_collection("Other", alias="other").id
    ids = {"uk": core.home_organisation_id or "", "jp": core.create_organisation("JPCERT/CC", "JPN")["id"],
           "au": core.create_organisation("ACSC", "AUS")["id"]}
    core.set_agreement("uk-jp", "JPCERT/CC", max_tlp=TlpLevel.AMBER)
    core.set_agreement("uk-au", "ACSC", max_tlp=TlpLevel.GREEN)
    tokens = {
        "writer": core.create_token("NCSC UK", read=[shared, other], write=[shared, other])[1],
        "reader": core.create_token("JPCERT/CC", read=[shared])[1],
        "au": core.create_token("ACSC", read=[shared])[1],
        "jp_sync": core.create_token("JPCERT/CC", read=[shared], agreement="uk-jp")[1],
    }
    # No scheduled sync worker: a test that adds a partner runs the sync itself, and a worker
    # racing it to the same push would leave it nothing to send.
    server = start_server(data_dir, sync=False)
    return Node(backend, data_dir, server, shared, other, tokens), core, ids


@pytest.fixture(scope="package", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("policy-node")
    database = create_pg_database() if request.param == "postgresql" else None
    node, core, ids = _start(request.param, base, database.url if database else None)
    try:
        yield World(node, core, ids["uk"], ids["jp"], ids["au"])
    finally:
        node.server.stop()
        core.close()
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
    elif stix_type == "identity":
        obj.update(name=extra.pop("name", "Producer"), identity_class="organization")
    obj.update(extra)
    return obj


def relationship(producer: str, source: str, target: str, markings: list[str] | None = None) -> dict[str, Any]:
    return sdo("relationship", producer, markings, relationship_type="indicates", source_ref=source,
               target_ref=target)


__all__ = ["AMBER", "AMBER_STRICT", "CLEAR", "GREEN", "RED", "World", "build_recipients_marking",
           "build_rel_to_marking", "cli_json", "relationship", "run_cli", "sdo"]
