"""What arrives from partners is treated like a TAXII POST (TLP normalisation), a DELETE keeps its recall
copy in the same transaction, and a redacted copy and the full version of one version are not a conflict."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from kizuna.core.filters import Filters
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN
from kizuna.federation.forms import is_redaction_of
from kizuna.policy.tlp import LEVEL_BY_OASIS_ID
from kizuna.store.base import VersionSelector
from tests.federation.helpers import (
    TLP_AMBER_STRICT,
    TLP_CLEAR,
    grant_partner,
    indicator,
    make_fed_node,
    start_medallion,
    sync,
)

FIXTURES = Path(__file__).parent.parent / "policy" / "fixtures"
TLP1_WHITE = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"
OPENCTI_AMBER_STRICT = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"
TLP_AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
ALIASES = {TLP1_WHITE, OPENCTI_AMBER_STRICT}


def opencti_objects() -> list[dict[str, Any]]:
    """The OpenCTI export (TLP:CLEAR under the TLP 1.0 WHITE id) plus an object under OpenCTI's own
    AMBER+STRICT id, with that id's statement-shaped definition as OpenCTI emits it."""
    bundle = json.loads((FIXTURES / "opencti-bundle-AMLCS0011.json").read_text())
    strict_definition = {
        "type": "marking-definition", "spec_version": "2.1", "id": OPENCTI_AMBER_STRICT,
        "created": "2022-10-01T00:00:00.000Z", "definition_type": "statement", "name": "TLP:AMBER+STRICT",
        "definition": {"statement": "TLP:AMBER+STRICT"}, "x_opencti_definition_type": "TLP",
        "x_opencti_definition": "TLP:AMBER+STRICT",
    }
    strict = indicator("identity--c78cb6e5-0c4b-4611-8297-d1b8b55e40b5", name="opencti strict")[0]
    strict["object_marking_refs"] = [OPENCTI_AMBER_STRICT]
    return [*bundle["objects"], strict_definition, strict]


def test_opencti_tlp_ids_pulled_from_a_partner_are_normalised_exactly_like_a_post(tmp_path: Path) -> None:
    objects = opencti_objects()
    process, port, collection = start_medallion(tmp_path / "m", objects)
    try:
        jp = make_fed_node(tmp_path, "JP", "JPN")
        jp.cli_json("partners", "add", "OCTI", "--url", f"http://127.0.0.1:{port}/api1/",
                    "--map", f"shared={collection}:pull", "--basic", "sync:secret", "--page-size", "5")
        run = sync(jp, "OCTI")["runs"][0]
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert run["error"] is None and run["quarantined"] == 0 and run["normalised"] > 0

    # The same objects POSTed to the node's TAXII API (the node call behind it), in another collection.
    node = Node.open(jp.data_dir)
    try:
        posted_to = node.create_collection("Posted", alias="posted")
        report = node.add_objects(NODE_ADMIN, posted_to, objects)
        assert not report.failures
        posted = {(json.loads(b)["id"], json.loads(b).get("modified", json.loads(b).get("created"))): json.loads(b)
                  for b in node.export_objects(posted_to)}
    finally:
        node.close()
    pulled = {(o["id"], o.get("modified", o.get("created"))): o for o in map(orjson.loads, jp.versions().values())}

    assert pulled == posted
    for obj in pulled.values():
        assert not ALIASES & set(obj.get("object_marking_refs", ())), obj["id"]
        assert obj["id"] not in ALIASES
    strict = next(o for o in pulled.values() if o.get("name") == "opencti strict v0")
    assert strict["object_marking_refs"] == [TLP_AMBER_STRICT]
    assert any(TLP_CLEAR in o.get("object_marking_refs", ()) for o in pulled.values())
    definitions = {o["id"] for o in pulled.values() if o["type"] == "marking-definition"}
    assert {TLP_CLEAR, TLP_AMBER_STRICT} <= definitions
    assert not {d for d in definitions if d not in LEVEL_BY_OASIS_ID} - {
        o["id"] for o in objects if o["type"] == "marking-definition" and o.get("definition_type") == "statement"
        and o["id"] not in ALIASES
    }
    # The rewrites are on record, as for a POST.
    audit = jp.sql("SELECT principal, body FROM audit_log WHERE kind = 'write' AND principal = 'partner:OCTI'")
    assert audit and sum(json.loads(body)["normalised"] for _, body in audit) == run["normalised"]


def test_a_delete_and_its_recall_copy_commit_together(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "n", org_name="UK national CERT", country="GBR")
    try:
        collection = node.create_collection("Shared", alias="shared")
        kept, lost = indicator(node.home_organisation_id or "", versions=2), indicator(node.home_organisation_id or "")
        assert not node.add_objects(NODE_ADMIN, collection, kept + lost).failures
        every = Filters(versions=VersionSelector(all=True))

        def held(table: str, stix_id: str) -> int:
            with node.store._read() as cur:  # type: ignore[attr-defined]
                cur.execute(f"SELECT COUNT(*) FROM {table} WHERE stix_id = ?", (stix_id,))
                return int(cur.fetchone()[0])

        # Writing the recall copy fails (a full disk, say): the delete must not happen either.
        with node.store._write() as cur:  # type: ignore[attr-defined]
            cur.execute("CREATE TRIGGER refuse_copies BEFORE INSERT ON fed_withdrawn "
                        "BEGIN SELECT RAISE(ABORT, 'no space left for the recall copy'); END")
        with pytest.raises(sqlite3.DatabaseError, match="no space left"):
            node.delete_object(NODE_ADMIN, "main", collection.id, lost[0]["id"], every)
        assert (held("objects", lost[0]["id"]), held("tombstones", lost[0]["id"]),
                held("fed_withdrawn", lost[0]["id"])) == (1, 0, 0)

        with node.store._write() as cur:  # type: ignore[attr-defined]
            cur.execute("DROP TRIGGER refuse_copies")
        assert node.delete_object(NODE_ADMIN, "main", collection.id, kept[0]["id"], every) == 2
        assert (held("objects", kept[0]["id"]), held("tombstones", kept[0]["id"]),
                held("fed_withdrawn", kept[0]["id"])) == (0, 2, 2)
        with node.store._read() as cur:  # type: ignore[attr-defined]
            cur.execute("SELECT reason, body, date_added FROM fed_withdrawn WHERE stix_id = ? ORDER BY version",
                        (kept[0]["id"],))
            copies = cur.fetchall()
        assert [(reason, orjson.loads(bytes(body))) for reason, body, _ in copies] == [("deleted", o) for o in kept]
        assert all(added is not None for _, _, added in copies)
    finally:
        node.close()


# -- two forms of one version --------------------------------------------------------------------
def full_object(producer: str, name: str) -> dict[str, Any]:
    obj = indicator(producer, marking=TLP_CLEAR, name=name)[0]
    return {**obj, "description": "seen on the ministry's mail relay", "labels": ["phishing", "apt", "mail"],
            "granular_markings": [{"marking_ref": TLP_AMBER, "selectors": ["description", "labels.[1]"]}]}


def redacted(full: dict[str, Any]) -> dict[str, Any]:
    partial = {k: v for k, v in full.items() if k not in ("description", "granular_markings")}
    return {**partial, "labels": ["phishing", "mail"]}


def test_redaction_is_recognised_only_where_granular_markings_explain_it() -> None:
    full = full_object("identity--5f0b8fd5-4a8b-4b1e-9d7e-0b7f1f3e2a10", "x")
    partial = redacted(full)
    assert is_redaction_of(partial, full) and not is_redaction_of(full, partial)
    anonymised = {**full, "created_by_ref": "identity--0e1b4c55-7a5d-4c84-9f6d-8f3a0f9c1b22"}
    assert is_redaction_of(anonymised, full)
    assert is_redaction_of({**partial, "created_by_ref": anonymised["created_by_ref"]}, full)
    # Content changed, or removed where no marking governs it: a conflict.
    assert not is_redaction_of({**partial, "name": "other"}, full)
    assert not is_redaction_of({k: v for k, v in partial.items() if k != "pattern_type"}, full)
    assert not is_redaction_of({**partial, "labels": ["phishing"]}, full)  # labels.[2] is not marked
    assert not is_redaction_of({**partial, "object_marking_refs": [TLP_AMBER]}, full)
    # A "fuller" body may not loosen a marking: the same content without the granular marking.
    loosened = {k: v for k, v in full.items() if k != "granular_markings"}
    assert not is_redaction_of(full, loosened) and not is_redaction_of(loosened, full)


def test_a_redacted_copy_and_the_full_version_from_two_partners(tmp_path: Path) -> None:
    """C reads P twice: through a plain token (granular AMBER removed) and through an AMBER agreement."""
    p, c = make_fed_node(tmp_path, "P", "GBR"), make_fed_node(tmp_path, "C", "JPN")
    plain = grant_partner(p, c, "JPN")
    # The AMBER agreement names a second organisation of C's, so C's plain token stays without one.
    p.cli_json("orgs", "create", "C analysts", "--country", "JPN")
    p.cli_json("agreements", "set", "p-c", "--partner", "C analysts", "--collections", "*",
               "--producers", "*", "--max-tlp", "amber")
    governed = p.cli_json("tokens", "create", "--org", "C analysts", "--read", "shared",
                          "--agreement", "p-c")["token"]
    p.start()
    try:
        for name, token in (("P-redacted", plain), ("P-full", governed)):
            c.cli_json("partners", "add", name, "--url", p.api_root_url, "--map", f"shared={p.collection}:pull",
                       "--token", token)
        first = full_object(p.identity, "redacted first")
        p.post([first])
        assert sync(c, "P-redacted")["runs"][0]["pulled"] >= 1
        before = c.sql("SELECT date_added, body FROM objects WHERE stix_id = ?", (first["id"],))
        assert [orjson.loads(bytes(b)) for _, b in before] == [redacted(first)]
        upgrade = sync(c, "P-full")["runs"][0]
        after = c.sql("SELECT date_added, body FROM objects WHERE stix_id = ?", (first["id"],))
        assert upgrade["upgraded"] == 1 and upgrade["quarantined"] == 0
        assert [orjson.loads(bytes(b)) for _, b in after] == [first]
        assert after[0][0] > before[0][0]  # moved to the end of the change feed: C's readers see the full form
        assert c.sql("SELECT partner FROM fed_provenance WHERE stix_id = ?", (first["id"],)) == [("P-full",)]

        second = full_object(p.identity, "full first")
        p.post([second])
        assert sync(c, "P-full")["runs"][0]["pulled"] == 1
        copy = sync(c, "P-redacted")["runs"][0]
        assert copy["redacted_copies"] == 1 and copy["quarantined"] == 0 and copy["upgraded"] == 0
        stored = c.sql("SELECT body FROM objects WHERE stix_id = ?", (second["id"],))
        assert [orjson.loads(bytes(b)) for (b,) in stored] == [second]
        assert c.sql("SELECT COUNT(*) FROM fed_quarantine") == [(0,)]
    finally:
        p.stop()
