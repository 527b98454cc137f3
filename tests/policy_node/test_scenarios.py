"""The read policy in a running node, over HTTP, on both backends (docs/policy.md)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from stix2validator import ValidationOptions, validate_instance

from kizuna.core.audit import unpack_served
from kizuna.core.filters import Filters
from kizuna.core.node import Node as CoreNode
from kizuna.policy import TLP2_IDS
from kizuna.policy.tlp import KNOWN_ALIAS_IDS
from kizuna.store.base import VersionSelector
from tests.conftest import TAXII
from tests.policy_node.conftest import (
    AMBER,
    AMBER_STRICT,
    CLEAR,
    GREEN,
    RED,
    World,
    build_recipients_marking,
    build_rel_to_marking,
    relationship,
    run_cli,
    sdo,
)

OPENCTI_BUNDLE = Path(__file__).parent.parent / "policy" / "fixtures" / "opencti-bundle-AMLCS0011.json"


def _ids(objects: list[dict[str, Any]]) -> set[str]:
    return {o["id"] for o in objects}


def test_amber_strict_report_never_reaches_a_japanese_token(world: World) -> None:
    node = world.node
    secret = sdo("report", world.uk, [AMBER_STRICT], object_refs=[f"indicator--{uuid.uuid4()}"])
    shared = sdo("indicator", world.uk, [AMBER])
    status = node.post([secret, shared])
    assert status["success_count"] == 2
    url = node.collection_url() + "objects/"
    for token in ("reader", "jp_sync"):
        session = node.session(token)
        seen = _ids(world.objects(token, **{"match[id]": f"{secret['id']},{shared['id']}"}))
        assert seen == {shared["id"]}, token
        assert session.get(url + secret["id"] + "/").status_code == 404
        assert session.get(url + secret["id"] + "/versions/").status_code == 404
        manifest = session.get(node.collection_url() + "manifest/", params={"match[id]": secret["id"]}).json()
        assert "objects" not in manifest
        assert session.get(f"{node.api_root}status/{status['id']}/").status_code == 404
    # The producer's own token sees it, so the hiding above is the policy, not a lost write.
    assert secret["id"] in _ids(world.objects("writer", **{"match[id]": secret["id"]}))
    # Export for a Japanese principal goes through the same check.
    core = CoreNode.open(node.data_dir)
    try:
        principal = core.authenticate(node.tokens["reader"])
        assert principal is not None
        collection = core.find_collection("shared")
        exported = b"".join(core.export_objects(collection, principal))
        assert secret["id"].encode() not in exported and shared["id"].encode() in exported
    finally:
        core.close()


def test_rel_to_gbr_jpn_reaches_japan_but_not_australia(world: World) -> None:
    rel_to = build_rel_to_marking(["GBR", "JPN"])
    indicator = sdo("indicator", world.uk, [GREEN, rel_to["id"]])
    world.node.post([rel_to, indicator])
    query = {"match[id]": indicator["id"]}
    assert _ids(world.objects("reader", **query)) == {indicator["id"]}
    assert world.objects("au", **query) == []


def test_red_note_reaches_only_its_named_recipients(world: World) -> None:
    recipients = build_recipients_marking([world.jp], created_by_ref=world.uk)
    target = sdo("indicator", world.uk, [CLEAR])
    note = sdo("note", world.uk, [RED, recipients["id"]], object_refs=[target["id"]])
    world.node.post([recipients, target, note])
    query = {"match[id]": f"{note['id']},{recipients['id']}"}
    assert _ids(world.objects("reader", **query)) == {note["id"], recipients["id"]}
    assert world.objects("au", **query) == []
    # A governed token is capped by its agreement (AMBER), so RED does not reach it even as a recipient.
    assert world.objects("jp_sync", **query) == [] or note["id"] not in _ids(world.objects("jp_sync", **query))


def test_granular_description_is_stripped_for_green_readers_and_stays_valid(world: World) -> None:
    indicator = sdo("indicator", world.uk, [GREEN], description="Seen beaconing to the ministry network",
                    granular_markings=[{"selectors": ["description"], "marking_ref": AMBER}])
    world.node.post([indicator])
    query = {"match[id]": indicator["id"]}
    [full] = world.objects("reader", **query)
    assert full == indicator
    [green] = world.objects("au", **query)
    assert "description" not in green and "granular_markings" not in green
    assert {k: v for k, v in indicator.items() if k not in ("description", "granular_markings")} == green
    result = validate_instance(green, ValidationOptions(version="2.1"))
    assert result.is_valid, [str(e) for e in result.errors]


def test_relationship_to_a_hidden_object_is_hidden(world: World) -> None:
    visible = sdo("indicator", world.uk, [GREEN])
    hidden = sdo("malware", world.uk, [AMBER_STRICT])
    link = relationship(world.uk, visible["id"], hidden["id"], [GREEN])
    report = sdo("report", world.uk, [GREEN], object_refs=[visible["id"], hidden["id"]])
    # A translation of the hidden object is its content (and names it): hidden with it.
    translation = sdo("language-content", world.uk, [GREEN], object_ref=hidden["id"],
                      object_modified=hidden["modified"], contents={"ja": {"name": "インプラント"}})
    world.node.post([visible, hidden, link, report, translation])
    ids = f"{visible['id']},{hidden['id']},{link['id']},{report['id']},{translation['id']}"
    seen = {o["id"]: o for o in world.objects("reader", **{"match[id]": ids})}
    assert set(seen) == {visible["id"], report["id"]}
    assert seen[report["id"]]["object_refs"] == [visible["id"]]
    assert set(_ids(world.objects("writer", **{"match[id]": ids}))) == {
        visible["id"], hidden["id"], link["id"], report["id"], translation["id"]}
    # Deleted, the hidden object is still not named to the reader by what pointed at it (it was hidden from it).
    deleted = world.node.session("writer").delete(world.node.collection_url() + f"objects/{hidden['id']}/")
    assert deleted.status_code == 200, deleted.text
    after = {o["id"]: o for o in world.objects("reader", **{"match[id]": ids})}
    assert set(after) == {visible["id"], report["id"]} and after[report["id"]]["object_refs"] == [visible["id"]]


def test_a_reference_into_another_collection_is_decided_there(world: World) -> None:
    # The object is kept only in a collection the reader has no grant to; its TLP:AMBER+STRICT hides it, and
    # so what points at it from the shared collection (core/elsewhere.py), over the real TAXII read path.
    hidden = sdo("indicator", world.uk, [AMBER_STRICT])
    internal = world.core.create_collection("Internal", alias=f"internal-{uuid.uuid4().hex[:8]}")
    assert not world.core.import_objects(internal, [hidden]).failures
    visible = sdo("indicator", world.uk, [GREEN])
    link = relationship(world.uk, visible["id"], hidden["id"], [GREEN])
    report = sdo("report", world.uk, [GREEN], object_refs=[visible["id"], hidden["id"]])
    world.node.post([visible, link, report])
    ids = f"{visible['id']},{link['id']},{report['id']}"
    seen = {o["id"]: o for o in world.objects("reader", **{"match[id]": ids})}
    assert set(seen) == {visible["id"], report["id"]}
    assert seen[report["id"]]["object_refs"] == [visible["id"]]
    assert set(_ids(world.objects("writer", **{"match[id]": ids}))) == {visible["id"], link["id"], report["id"]}


def test_hidden_objects_are_not_counted_and_give_no_more_tell(world: World) -> None:
    hidden = [sdo("indicator", world.uk, [AMBER_STRICT]) for _ in range(5)]
    shown = [sdo("indicator", world.uk, [GREEN]) for _ in range(2)]
    world.node.post([hidden[0], shown[0], *hidden[1:], shown[1]])
    params = {"match[id]": ",".join(o["id"] for o in hidden + shown), "limit": "2"}
    response = world.node.session("reader").get(world.node.collection_url() + "objects/", params=params)
    body = response.json()
    assert [o["id"] for o in body["objects"]] == [shown[0]["id"], shown[1]["id"]]
    assert body["more"] is False and "next" not in body
    manifest = world.node.session("reader").get(world.node.collection_url() + "manifest/", params=params).json()
    assert [r["id"] for r in manifest["objects"]] == [shown[0]["id"], shown[1]["id"]]
    assert manifest["more"] is False


def test_opencti_bundle_comes_out_with_oasis_tlp_ids(world: World) -> None:
    bundle = json.loads(OPENCTI_BUNDLE.read_text())
    status = world.node.post(bundle["objects"], collection=world.node.other_collection)
    assert status["failure_count"] == 0
    messages = " ".join(s.get("message", "") for s in status["successes"])
    assert "TLP normalised" in messages and "613f2e26" in messages
    out = world.node.data_dir.parent / "opencti-export.json"
    run_cli(world.node.data_dir, "export", "--collection", "other", "-o", str(out))
    text = out.read_text()
    assert not any(alias in text for alias in KNOWN_ALIAS_IDS)
    exported = {o["id"]: o for o in json.loads(text)["objects"]}
    assert TLP2_IDS[min(TLP2_IDS)] in exported  # the TLP:CLEAR definition clients need is in the collection
    marked = [o for o in exported.values() if o.get("object_marking_refs")]
    assert marked and all(CLEAR in o["object_marking_refs"] for o in marked if o["type"] != "marking-definition")


def test_write_and_egress_are_audited_and_delete_of_hidden_is_404(world: World) -> None:
    hidden = sdo("indicator", world.uk, [AMBER_STRICT])
    shown = sdo("indicator", world.uk, [AMBER])
    world.node.post([hidden, shown])
    assert _ids(world.objects("reader", **{"match[id]": f"{hidden['id']},{shown['id']}"})) == {shown["id"]}
    session = world.node.session("reader")
    url = world.node.collection_url() + "objects/" + hidden["id"] + "/"
    assert session.delete(url).status_code in (403, 404)  # reader has no write right at all
    session.get(url)
    bad = world.node.session("reader")
    bad.headers["Authorization"] = "Bearer kz_0000_nope"
    assert bad.get(world.node.collection_url()).status_code == 401
    core = CoreNode.open(world.node.data_dir)
    try:
        records = list(core.audit.records())
        kinds = {r.kind for r in records}
        assert {"write", "egress", "auth-failure", "token-created", "agreement-changed"} <= kinds
        principal = core.authenticate(world.node.tokens["reader"])
        assert principal is not None
        egress = [json.loads(r.body) for r in records if r.kind == "egress" and r.principal == principal.key]
        # JPCERT/CC reads under an agreement up to AMBER and no more: the reason names the marking.
        assert any(e.get("hidden", {}).get("tlp-amber-strict") for e in egress)
        served = [stix_id for e in egress for stix_id, _ in unpack_served(e["served"])]
        assert shown["id"] in served and hidden["id"] not in served
        assert core.audit.verify().ok
        # Versions reach DELETE only through view(): nothing of the hidden object is selected for JP.
        viewer = core.viewer_for(principal, core.find_collection("shared"))
        assert core.reader.visible_versions(viewer, hidden["id"], Filters(versions=VersionSelector(all=True))) == []
    finally:
        core.close()


def test_taxii_media_type_on_policy_errors(world: World) -> None:
    response = world.node.session("au").get(world.node.collection_url() + "objects/" + f"indicator--{uuid.uuid4()}/")
    assert response.status_code == 404 and response.headers["content-type"].startswith(TAXII.split(";")[0])


def test_a_write_cannot_probe_for_a_version_hidden_from_the_writer(world: World) -> None:
    """STIX 2.1 §3.6: an id and modified name one version. A partner posting under the (id, modified) of a
    version it may not see gets the answer it gets for an absent id (stored), not a conflict or "already
    stored" that would tell it the hidden version exists; the node keeps its own version, and a version the
    writer may see still reports its conflict."""
    _, secret = world.core.create_token("JPCERT/CC", read=["shared"], write=["shared"], agreement="uk-jp")
    world.node.tokens["jp_writer"] = secret
    hidden = sdo("indicator", world.uk, [AMBER_STRICT])
    shown = sdo("indicator", world.uk, [AMBER])
    world.node.post([hidden, shown])
    absent = sdo("indicator", world.jp, [AMBER])
    probes = [{**hidden, "name": "probe", "object_marking_refs": [AMBER]}, hidden,
              {**shown, "name": "changed"}, absent]
    status = world.node.post(probes, token="jp_writer")
    answered = {(entry["id"], entry.get("message")) for entry in status.get("successes", [])}
    assert (hidden["id"], None) in answered and (absent["id"], None) in answered
    assert status["success_count"] == 3 and [f["id"] for f in status["failures"]] == [shown["id"]]
    assert "already stored" in status["failures"][0]["message"]
    # The node's version is untouched, and still hidden from the writer.
    assert [o["name"] for o in world.objects("writer", **{"match[id]": hidden["id"]})] == ["Scanner"]
    assert world.objects("jp_writer", **{"match[id]": hidden["id"]}) == []


def test_a_hidden_object_places_no_definition_a_reader_could_see_arrive(world: World) -> None:
    """The TLP definitions come into a collection all five at once, with the first object marked with any of
    them: a TLP:RED definition placed when the first RED object arrived told every reader that (and when) an
    object it may not see came in."""
    fresh = world.core.create_collection("Fresh", alias=f"fresh-{uuid.uuid4().hex[:8]}")
    _, secret = world.core.create_token("JPCERT/CC", read=[fresh.id], agreement="uk-jp")
    world.node.tokens["fresh_reader"] = secret

    def read_out() -> list[dict[str, Any]]:
        answer = world.node.session("fresh_reader").get(world.node.collection_url(fresh.id) + "objects/")
        assert answer.status_code == 200, answer.text
        objects: list[dict[str, Any]] = answer.json().get("objects", [])
        return objects

    assert not world.core.import_objects(fresh, [sdo("indicator", world.uk, [GREEN])]).failures
    seen = read_out()
    assert {TLP2_IDS[level] for level in TLP2_IDS} <= {o["id"] for o in seen}
    assert not world.core.import_objects(fresh, [sdo("indicator", world.uk, [RED])]).failures
    assert read_out() == seen  # nothing of the RED object shows, not even a definition placed with it


def _sco(stix_type: str, markings: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{uuid.uuid4()}",
            "object_marking_refs": markings, **properties}


def test_references_embedded_in_observables_and_sdos_are_decided_too(world: World) -> None:
    # An observable's id derives from its value: a TLP:GREEN domain naming the TLP:AMBER+STRICT address it
    # resolves to would name that address to every TLP:GREEN reader (policy/dangling.py).
    hidden_ip = _sco("ipv4-addr", [AMBER_STRICT], value="203.0.113.9")
    shown_ip = _sco("ipv4-addr", [GREEN], value="198.51.100.20")
    hidden_file = _sco("file", [AMBER_STRICT], name="dropper.exe")
    domain = _sco("domain-name", [GREEN], value="c2.example", resolves_to_refs=[hidden_ip["id"], shown_ip["id"]])
    only_hidden = _sco("domain-name", [GREEN], value="c3.example", resolves_to_refs=[hidden_ip["id"]])
    flow = _sco("network-traffic", [GREEN], protocols=["tcp"], src_ref=hidden_ip["id"], dst_ref=shown_ip["id"])
    flow_from_hidden = _sco("network-traffic", [GREEN], protocols=["tcp"], src_ref=hidden_ip["id"])
    malware = sdo("malware", world.uk, [GREEN], sample_refs=[hidden_file["id"]])
    objects = [hidden_ip, shown_ip, hidden_file, domain, only_hidden, flow, flow_from_hidden, malware]
    world.node.post(objects)
    ids = ",".join(o["id"] for o in objects)
    seen = {o["id"]: o for o in world.objects("reader", **{"match[id]": ids})}
    assert set(seen) == {shown_ip["id"], domain["id"], only_hidden["id"], flow["id"], malware["id"]}
    assert seen[domain["id"]]["resolves_to_refs"] == [shown_ip["id"]]
    assert "resolves_to_refs" not in seen[only_hidden["id"]]
    # Network traffic MUST name a source or a destination (STIX 2.1 §6.12): without its only one it is hidden.
    assert "src_ref" not in seen[flow["id"]] and seen[flow["id"]]["dst_ref"] == shown_ip["id"]
    assert "sample_refs" not in seen[malware["id"]] and seen[malware["id"]]["name"] == malware["name"]
    assert hidden_ip["id"] not in json.dumps(list(seen.values()))
    for obj in seen.values():
        result = validate_instance(obj, ValidationOptions(version="2.1"))
        assert result.is_valid, [str(e) for e in result.errors]
    # Its writer, who may see every object, reads them as stored.
    written = {o["id"]: o for o in world.objects("writer", **{"match[id]": ids})}
    assert written[domain["id"]]["resolves_to_refs"] == domain["resolves_to_refs"]
    assert written[flow_from_hidden["id"]]["src_ref"] == hidden_ip["id"]
