"""Recall towards partners this node only pushes to (TAXII DELETE), and recall of unversioned SCOs,
with real processes: two Kizuna nodes, and medallion as a foreign TAXII server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from kizuna.stix.timestamps import parse_timestamp
from tests.conftest import TAXII
from tests.federation.helpers import (
    TLP_CLEAR,
    FedNode,
    grant_partner,
    indicator,
    make_fed_node,
    medallion_objects,
    stamp,
    start_medallion,
    sync,
)

TLP_RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"


def sco(value: str) -> dict[str, Any]:
    return {"type": "ipv4-addr", "spec_version": "2.1", "id": f"ipv4-addr--{uuid.uuid4()}", "value": value,
            "object_marking_refs": [TLP_CLEAR]}


def delete(node: FedNode, object_id: str, token: str | None = None) -> int:
    response = requests.delete(
        f"{node.api_root_url}collections/{node.collection}/objects/{object_id}/",
        headers={"Accept": TAXII, "Authorization": f"Bearer {token or node.admin_token}"}, timeout=60,
    )
    return response.status_code


def ids_on(node: FedNode) -> set[str]:
    return {sid for sid, _ in node.versions()}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FedNode, FedNode]]:
    """UK pushes to JP and never hears from it; JP knows UK as a partner (so UK's pushes have provenance)."""
    base: Path = tmp_path_factory.mktemp("pushrecall")
    uk, jp = make_fed_node(base, "UK", "GBR"), make_fed_node(base, "JP", "JPN")
    grant_partner(jp, uk, "GBR")
    grant_partner(uk, jp, "JPN")
    uk.cli_json("agreements", "set", "uk-jp", "--partner", "JP national CERT", "--collections", "*",
                "--producers", "*", "--max-tlp", "amber")
    try:
        uk.start()
        jp.start()
        uk.cli_json("partners", "add", "JP", "--url", jp.api_root_url, "--map", f"shared={jp.collection}:push",
                    "--token", jp.tokens["UK"], "--org", "JP national CERT", "--agreement", "uk-jp")
        jp.cli_json("partners", "add", "UK", "--url", uk.api_root_url, "--map", f"shared={uk.collection}:pull",
                    "--token", uk.tokens["JP"], "--org", "UK national CERT")
        yield uk, jp
    finally:
        uk.stop()
        jp.stop()


def test_a_push_only_partner_is_told_about_deletions_not_re_markings(pair: tuple[FedNode, FedNode]) -> None:
    uk, jp = pair
    deleted = indicator(uk.identity, marking=TLP_CLEAR, name="to delete")
    remarked = indicator(uk.identity, marking=TLP_CLEAR, name="to re-mark")
    kept = indicator(uk.identity, marking=TLP_CLEAR, name="kept")
    address = sco("192.0.2.77")
    uk.post(deleted + remarked + kept + [address])
    first = sync(uk, "JP")["runs"][0]
    assert first["error"] is None and first["recalls_sent"] == 0
    sent = {o[0]["id"] for o in (deleted, remarked, kept)} | {address["id"]}
    assert sent <= ids_on(jp)
    # JP records them as pushed in by UK.
    assert {r[0] for r in jp.sql("SELECT stix_id FROM fed_provenance WHERE partner = 'UK'")} >= sent

    assert delete(uk, deleted[0]["id"]) == 200
    assert delete(uk, address["id"]) == 200
    uk.post([{**remarked[0], "modified": stamp(30), "object_marking_refs": [TLP_RED]}])
    run = sync(uk, "JP")["runs"][0]

    # The deletes are recalled; the RED version recalls nothing: JP keeps the last version it may see.
    assert run["error"] is None and run["recalls_sent"] == 2
    on_jp = ids_on(jp)
    assert {kept[0]["id"], remarked[0]["id"]} <= on_jp
    assert not {deleted[0]["id"], address["id"]} & on_jp
    assert [key for key in jp.versions() if key[0] == remarked[0]["id"]] == [
        (remarked[0]["id"], parse_timestamp(remarked[0]["modified"]))  # the RED version never went
    ]
    reasons = set(jp.sql("SELECT stix_id, reason FROM fed_withdrawn"))
    assert {(deleted[0]["id"], "recalled"), (address["id"], "recalled")} <= reasons
    assert remarked[0]["id"] not in {stix_id for stix_id, _ in reasons}
    assert sync(uk, "JP")["runs"][0]["recalls_sent"] == 0  # told once


def test_a_partner_token_deletes_only_what_its_node_pushed_in(pair: tuple[FedNode, FedNode]) -> None:
    uk, jp = pair
    own = indicator(jp.identity, marking=TLP_CLEAR, name="jp own")
    jp.post(own)
    # UK's token on JP can read JP's object, but UK did not send it: a DELETE from UK does not reach it.
    assert delete(jp, own[0]["id"], token=jp.tokens["UK"]) == 404
    assert own[0]["id"] in ids_on(jp)


def test_recall_of_a_deleted_sco_by_content_when_pulled(pair: tuple[FedNode, FedNode]) -> None:
    uk, jp = pair
    address = sco("198.51.100.200")
    uk.post([address])
    assert sync(jp, "UK")["runs"][0]["error"] is None
    held = [key for key in jp.versions() if key[0] == address["id"]]
    mine = [key for key in uk.versions() if key[0] == address["id"]]
    assert len(held) == len(mine) == 1 and held != mine  # each node's own version (date_added) of it
    assert delete(uk, address["id"]) == 200
    run = sync(jp, "UK")["runs"][0]
    assert run["error"] is None and run["recalled"] >= 1
    assert address["id"] not in ids_on(jp)


def test_a_deleted_sco_is_recalled_by_the_copy_the_partner_was_sent(pair: tuple[FedNode, FedNode]) -> None:
    # A domain naming a TLP:RED address reached JP without it (policy/dangling.py): its tombstone names it by the
    # hash of that copy, so JP recalls it, and the hash of the full body (which would let JP confirm a guess of
    # the address) never leaves. Network traffic whose one address is hidden was never JP's: not named at all.
    uk, jp = pair
    hidden, shown = {**sco("203.0.113.77"), "object_marking_refs": [TLP_RED]}, sco("198.51.100.77")
    domain = {"type": "domain-name", "spec_version": "2.1", "id": f"domain-name--{uuid.uuid4()}",
              "value": "recall.example", "resolves_to_refs": [hidden["id"], shown["id"]],
              "object_marking_refs": [TLP_CLEAR]}
    flow = {"type": "network-traffic", "spec_version": "2.1", "id": f"network-traffic--{uuid.uuid4()}",
            "protocols": ["tcp"], "src_ref": hidden["id"], "object_marking_refs": [TLP_CLEAR]}
    uk.post([hidden, shown, domain, flow])
    assert sync(jp, "UK")["runs"][0]["error"] is None
    assert domain["id"] in ids_on(jp) and hidden["id"] not in ids_on(jp) and flow["id"] not in ids_on(jp)
    assert delete(uk, domain["id"]) == 200 and delete(uk, flow["id"]) == 200
    page = requests.get(f"{uk.api_root_url}collections/{uk.collection}/tombstones/",
                        headers={"Accept": TAXII, "Authorization": f"Bearer {uk.tokens['JP']}"}, timeout=60).json()
    named = {entry["id"] for entry in page["tombstones"]}
    assert domain["id"] in named and flow["id"] not in named
    run = sync(jp, "UK")["runs"][0]
    assert run["error"] is None and run["recalled"] >= 1
    assert domain["id"] not in ids_on(jp)


def test_a_foreign_push_partner_receives_taxii_deletes(pair: tuple[FedNode, FedNode], tmp_path: Path) -> None:
    uk, _ = pair
    process, port, collection = start_medallion(tmp_path / "m", [])
    try:
        uk.cli_json("partners", "add", "OASIS", "--url", f"http://127.0.0.1:{port}/api1/",
                    "--map", f"shared={collection}:push", "--basic", "sync:secret", "--page-size", "5")
        gone, stays = indicator(uk.identity, marking=TLP_CLEAR, versions=2, name="gone"), indicator(
            uk.identity, marking=TLP_CLEAR, name="stays")
        uk.post(gone + stays)
        assert sync(uk, "OASIS")["runs"][0]["error"] is None
        assert {gone[0]["id"], stays[0]["id"]} <= {o["id"] for o in medallion_objects(port, collection)}
        assert delete(uk, gone[0]["id"]) == 200
        run = sync(uk, "OASIS")["runs"][0]
        assert run["error"] is None and run["recalls_sent"] == 2  # both versions
        left = {o["id"] for o in medallion_objects(port, collection)}
        assert gone[0]["id"] not in left and stays[0]["id"] in left
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_partner_that_refuses_deletes_still_receives_pushes(pair: tuple[FedNode, FedNode]) -> None:
    uk, jp = pair
    write_only = jp.cli_json("tokens", "create", "--org", "UK national CERT", "--write", "shared")["token"]
    uk.cli_json("partners", "add", "JP-wo", "--url", jp.api_root_url, "--map", f"shared={jp.collection}:push",
                "--token", write_only, "--org", "JP national CERT", "--agreement", "uk-jp")
    assert sync(uk, "JP-wo")["runs"][0]["error"] is None
    obj = indicator(uk.identity, marking=TLP_CLEAR, name="write-only partner")
    uk.post(obj)
    assert delete(uk, obj[0]["id"]) == 200
    later = indicator(uk.identity, marking=TLP_CLEAR, name="after the refusal")
    uk.post(later)
    run = sync(uk, "JP-wo")["runs"][0]
    assert run["error"] is None and run["pushed"] >= 1 and later[0]["id"] in ids_on(jp)
    refusals = [m for m in run["mappings"] if m.get("direction") == "push-recall"]
    assert refusals and "403" in refusals[0]["error"]
