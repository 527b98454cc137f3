"""Three real SQLite nodes (UK, JP, AU): agreements on push egress, relayed AMBER+STRICT stopping on the pull
path and relayed AMBER reaching only the recipient's clients, provenance of pushed-in versions, recall of
deleted and re-marked versions along a chain, and partner status over HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import TAXII
from tests.federation.helpers import (
    TLP_AMBER_STRICT,
    TLP_CLEAR,
    FedNode,
    grant_partner,
    indicator,
    make_fed_node,
    stamp,
    sync,
)

TLP_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
TLP_AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
TLP_RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
COUNTRIES = {"UK": "GBR", "JP": "JPN", "AU": "AUS"}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FedNode]]:
    base: Path = tmp_path_factory.mktemp("fedpolicy")
    found = {name: make_fed_node(base, name, country) for name, country in COUNTRIES.items()}
    for host in found.values():
        for guest in found.values():
            if guest is not host:
                grant_partner(host, guest, COUNTRIES[guest.name])
    try:
        for node in found.values():
            node.start()
        yield found
    finally:
        for node in found.values():
            node.stop()


def org(node: FedNode) -> str:
    return f"{node.name} national CERT"


def partner(node: FedNode, name: str, other: FedNode, direction: str, *extra: str, token: str | None = None) -> None:
    mapping = f"shared={other.collection}:{direction}"
    node.cli_json("partners", "add", name, "--url", other.api_root_url, "--map", mapping,
                  "--token", token or other.tokens[node.name], *extra)


def stored(node: FedNode, ids: set[str]) -> dict[tuple[str, int], dict[str, Any]]:
    return {key: json.loads(body) for key, body in node.versions().items() if key[0] in ids}


def pulled_from(source: FedNode, node: FedNode, max_tlp: str, name: str, objects: list[dict[str, Any]]) -> set[str]:
    """``source`` releases everything up to ``max_tlp`` to ``node``'s organisation, which pulls ``objects`` through
    a new partner entry ``name``; their ids."""
    source.cli_json("agreements", "set", f"{name}-terms", "--partner", org(node), "--collections", "*",
                    "--producers", "*", "--max-tlp", max_tlp)
    partner(node, name, source, "pull")
    source.post(objects)
    assert sync(node, name)["runs"][0]["error"] is None
    ids = {obj["id"] for obj in objects}
    assert {key[0] for key in stored(node, ids)} == ids
    return ids


def anonymous_identity(node: FedNode) -> str:
    rows = node.sql("SELECT value FROM node_settings WHERE key = 'anonymous_identity'")
    assert len(rows) == 1
    return str(rows[0][0])


def with_granular(obj: dict[str, Any], marking: str) -> dict[str, Any]:
    return {**obj, "description": "seen on the ministry's mail relay",
            "granular_markings": [{"marking_ref": marking, "selectors": ["description"]}]}


def test_push_applies_each_partner_agreement(nodes: dict[str, FedNode]) -> None:
    uk, jp, au = nodes["UK"], nodes["JP"], nodes["AU"]
    uk.cli_json("agreements", "set", "uk-jp", "--partner", org(jp), "--collections", "*", "--producers", "*",
                "--max-tlp", "amber", "--anonymise-producer")
    uk.cli_json("agreements", "set", "uk-au", "--partner", org(au), "--collections", "*", "--producers", "*",
                "--max-tlp", "green", "--keep-producer")
    partner(uk, "JP-push", jp, "push", "--org", org(jp), "--agreement", "uk-jp")
    partner(uk, "AU-push", au, "push", "--org", org(au), "--agreement", "uk-au")
    made = {
        level: indicator(uk.identity, marking=marking, name=f"uk {level}")[0]
        for level, marking in (("clear", TLP_CLEAR), ("green", TLP_GREEN), ("amber", TLP_AMBER),
                               ("strict", TLP_AMBER_STRICT), ("red", TLP_RED))
    }
    made["granular"] = with_granular(indicator(uk.identity, marking=TLP_CLEAR, name="uk granular")[0], TLP_AMBER)
    uk.post(list(made.values()))
    for name in ("JP-push", "AU-push"):
        assert sync(uk, name)["runs"][0]["error"] is None

    ids = {obj["id"] for obj in made.values()}
    anonymous = anonymous_identity(uk)
    expected_jp = {
        level: {**made[level], "created_by_ref": anonymous} for level in ("clear", "green", "amber", "granular")
    }
    granular_for_au = {k: v for k, v in made["granular"].items() if k not in ("description", "granular_markings")}
    expected_au = {"clear": made["clear"], "green": made["green"], "granular": granular_for_au}
    for node, expected in ((jp, expected_jp), (au, expected_au)):
        got = stored(node, ids)
        assert sorted(got.values(), key=lambda o: o["id"]) == sorted(expected.values(), key=lambda o: o["id"])


def test_a_widened_agreement_pushes_what_it_hid_before(nodes: dict[str, FedNode]) -> None:
    # The push cursor is a high-water mark of date_added: a version the agreement hid when it was pushed past
    # would never go, whatever the agreement said later. A change of terms offers every version again.
    uk, au = nodes["UK"], nodes["AU"]
    uk.cli_json("agreements", "set", "uk-au-widen", "--partner", org(au), "--collections", "*", "--producers", "*",
                "--max-tlp", "green")
    partner(uk, "AU-widen", au, "push", "--org", org(au), "--agreement", "uk-au-widen")
    amber = indicator(uk.identity, marking=TLP_AMBER, name="uk amber, first hidden")
    green = indicator(uk.identity, marking=TLP_GREEN, name="uk green")
    uk.post(amber + green)
    first = sync(uk, "AU-widen")["runs"][0]
    assert first["error"] is None and not first["notes"]
    wanted = {amber[0]["id"], green[0]["id"]}
    assert {key[0] for key in stored(au, wanted)} == {green[0]["id"]}

    uk.cli_json("agreements", "set", "uk-au-widen", "--max-tlp", "amber")
    widened = sync(uk, "AU-widen")["runs"][0]
    assert widened["error"] is None
    assert {key[0] for key in stored(au, wanted)} == wanted
    assert len(widened["notes"]) == 1 and "offered again" in widened["notes"][0], widened["notes"]
    # Offered once: the next run, on the same terms, sends nothing and says nothing.
    again = sync(uk, "AU-widen")["runs"][0]
    assert again["error"] is None and again["pushed"] == 0 and not again["notes"]


def test_a_widened_agreement_reaches_a_node_that_pulls(nodes: dict[str, FedNode]) -> None:
    # A pull cursor is the partner's date_added: versions the partner hid from us when we passed them would
    # never come, whatever it allowed later. A Kizuna partner names the terms we read under on each page
    # (Kizuna-Terms); when they change, the pull reads the collection again from the start.
    uk, au = nodes["UK"], nodes["AU"]
    uk.cli_json("agreements", "set", "uk-au-pull", "--partner", org(au), "--collections", "*", "--producers", "*",
                "--max-tlp", "green")
    bound = uk.cli_json("tokens", "create", "--org", org(au), "--read", "shared", "--agreement", "uk-au-pull")
    partner(au, "UK-pull-widen", uk, "pull", token=bound["token"])
    amber = indicator(uk.identity, marking=TLP_AMBER, name="uk amber, first hidden from the pull")
    green = indicator(uk.identity, marking=TLP_GREEN, name="uk green, pulled")
    uk.post(amber + green)
    first = sync(au, "UK-pull-widen")["runs"][0]
    assert first["error"] is None and not first["notes"]
    wanted = {amber[0]["id"], green[0]["id"]}
    assert {key[0] for key in stored(au, wanted)} == {green[0]["id"]}
    unchanged = sync(au, "UK-pull-widen")["runs"][0]  # same terms: reads on from where it stood
    assert unchanged["error"] is None and unchanged["pulled"] == 0 and not unchanged["notes"]

    uk.cli_json("agreements", "set", "uk-au-pull", "--max-tlp", "amber")
    widened = sync(au, "UK-pull-widen")["runs"][0]
    assert widened["error"] is None
    assert {key[0] for key in stored(au, wanted)} == wanted
    assert widened["pulled"] == 1, widened  # the green version came again as a duplicate, kept once
    assert len(widened["notes"]) == 1 and "read again from the start" in widened["notes"][0], widened["notes"]
    again = sync(au, "UK-pull-widen")["runs"][0]
    assert again["error"] is None and again["pulled"] == 0 and not again["notes"]


def test_a_page_names_the_readers_terms_only_when_a_policy_decides_them(nodes: dict[str, FedNode]) -> None:
    uk = nodes["UK"]
    partner_page = requests.get(f"{uk.api_root_url}collections/{uk.collection}/objects/", timeout=30, headers={
        "Accept": TAXII, "Authorization": f"Bearer {uk.tokens['AU']}"})
    assert partner_page.status_code == 200
    assert len(partner_page.headers["Kizuna-Terms"]) == 64
    own_page = requests.get(f"{uk.api_root_url}collections/{uk.collection}/objects/", timeout=30, headers={
        "Accept": TAXII, "Authorization": f"Bearer {uk.admin_token}"})
    assert own_page.status_code == 200 and "Kizuna-Terms" not in own_page.headers


def test_relayed_amber_strict_is_not_served_onward(nodes: dict[str, FedNode]) -> None:
    uk, jp, au = nodes["UK"], nodes["JP"], nodes["AU"]
    strict_from_jp = indicator(jp.identity, marking=TLP_AMBER_STRICT, name="jp strict")
    clear_from_jp = indicator(jp.identity, marking=TLP_CLEAR, name="jp clear")
    relayed = pulled_from(jp, uk, "amber+strict", "JP-pull", strict_from_jp + clear_from_jp)

    # AU reads UK under an agreement that releases everything up to AMBER+STRICT from any producer.
    uk.cli_json("agreements", "set", "uk-au-all", "--partner", org(au), "--collections", "*", "--producers", "*",
                "--max-tlp", "amber+strict")
    governed = uk.cli_json("tokens", "create", "--org", org(au), "--read", "shared", "--agreement",
                           "uk-au-all")["token"]
    own_strict = indicator(uk.identity, marking=TLP_AMBER_STRICT, name="uk strict")
    uk.post(own_strict)
    partner(au, "UK-pull", uk, "pull", token=governed)
    assert sync(au, "UK-pull")["runs"][0]["error"] is None
    got = {key[0] for key in stored(au, relayed | {own_strict[0]["id"]})}
    # UK's own AMBER+STRICT reaches AU through the agreement; the one UK received from JP stops at UK.
    assert got == {clear_from_jp[0]["id"], own_strict[0]["id"]}


def test_relayed_amber_reaches_only_the_recipients_clients(nodes: dict[str, FedNode]) -> None:
    # TLP 2.0, TLP:AMBER: "Recipients may share TLP:AMBER information with members of their own organization and
    # its clients on a need-to-know basis". UK's node received JP's AMBER; an agreement releasing every producer's
    # AMBER to AU does not carry it to AU until AU is a client of UK's organisation.
    uk, jp, au = nodes["UK"], nodes["JP"], nodes["AU"]
    (relayed,) = pulled_from(jp, uk, "amber", "JP-pull-amber", indicator(jp.identity, marking=TLP_AMBER,
                                                                         name="jp amber"))

    agreed = uk.cli_json("agreements", "set", "uk-au-amber", "--partner", org(au), "--collections", "*",
                         "--producers", "*", "--max-tlp", "amber")
    assert len(agreed["notes"]) == 1 and "not a client" in agreed["notes"][0], agreed["notes"]
    governed = uk.cli_json("tokens", "create", "--org", org(au), "--read", "shared", "--agreement",
                           "uk-au-amber")["token"]
    own_amber = indicator(uk.identity, marking=TLP_AMBER, name="uk amber for au")
    uk.post(own_amber)
    own = own_amber[0]["id"]

    def read(object_id: str) -> requests.Response:
        return requests.get(f"{uk.api_root_url}collections/{uk.collection}/objects/{object_id}/",
                            headers={"Accept": TAXII, "Authorization": f"Bearer {governed}"}, timeout=30)

    absent = read(f"indicator--{uuid.uuid4()}")
    hidden = read(relayed)
    assert read(own).status_code == 200
    # Hidden exactly as an absent object is: the same status and error body.
    assert (hidden.status_code, hidden.json()) == (absent.status_code, absent.json()) == (404, absent.json())
    partner(uk, "AU-push-amber", au, "push", "--org", org(au), "--agreement", "uk-au-amber")
    assert sync(uk, "AU-push-amber")["runs"][0]["error"] is None
    assert {key[0] for key in stored(au, {relayed, own})} == {own}

    # A client of UK's organisation may receive it: the token reads it, and the next push offers it.
    uk.cli_json("policy", "org", org(au), "--client-of", org(uk))
    assert read(relayed).status_code == 200
    run = sync(uk, "AU-push-amber")["runs"][0]
    assert run["error"] is None and any("offered again" in note for note in run["notes"]), run
    assert {key[0] for key in stored(au, {relayed, own})} == {relayed, own}
    uk.cli_json("policy", "org", org(au), "--client-of", "")


def test_pushed_in_versions_have_provenance_and_are_not_echoed(nodes: dict[str, FedNode]) -> None:
    uk, au = nodes["UK"], nodes["AU"]
    partner(au, "UK-push", uk, "push")
    assert sync(uk, "AU-push")["runs"][0]["error"] is None  # drain what earlier tests left for AU
    from_au = indicator(au.identity, marking=TLP_CLEAR, name="au pushed")
    au.post(from_au)
    run = sync(au, "UK-push")["runs"][0]
    assert run["error"] is None and run["pushed"] >= 1
    rows = uk.sql("SELECT partner, remote_collection FROM fed_provenance WHERE stix_id = ?", (from_au[0]["id"],))
    assert rows == [("AU-push", "push")]
    # Only AU's version is new on UK since its last push to AU: nothing goes back.
    again = sync(uk, "AU-push")["runs"][0]
    assert again["error"] is None
    assert again["pushed"] == 0


def _delete(node: FedNode, object_id: str) -> None:
    response = requests.delete(
        f"{node.api_root_url}collections/{node.collection}/objects/{object_id}/",
        headers={"Accept": TAXII, "Authorization": f"Bearer {node.admin_token}"}, timeout=60,
    )
    assert response.status_code == 200, response.text


def test_deletes_travel_down_a_chain_and_re_markings_recall_nothing(nodes: dict[str, FedNode]) -> None:
    uk, jp, au = nodes["UK"], nodes["JP"], nodes["AU"]
    # Partners from the previous tests: UK pulls JP ("JP-pull"), AU pulls UK ("UK-pull").
    deleted = indicator(jp.identity, marking=TLP_CLEAR, name="to delete")
    remarked = indicator(jp.identity, versions=1, marking=TLP_CLEAR, name="to re-mark")
    revoked = indicator(jp.identity, versions=1, marking=TLP_CLEAR, name="to revoke")
    kept = indicator(jp.identity, marking=TLP_CLEAR, name="kept")
    jp.post(deleted + remarked + revoked + kept)
    assert sync(uk, "JP-pull")["runs"][0]["error"] is None
    assert sync(au, "UK-pull")["runs"][0]["error"] is None
    ids = {o[0]["id"] for o in (deleted, remarked, revoked, kept)}
    assert {key[0] for key in stored(au, ids)} == ids

    _delete(jp, deleted[0]["id"])
    red = {**remarked[0], "modified": stamp(30), "object_marking_refs": [TLP_RED]}
    revocation = {**revoked[0], "modified": stamp(31), "revoked": True}
    jp.post([red, revocation])
    # Only the delete is a recall: the RED version withdraws nothing, UK and AU keep the last version they
    # may see (each principal sees its own history; a producer withdraws a release by deleting or revoking).
    first = sync(uk, "JP-pull")["runs"][0]
    assert first["error"] is None and first["recalled"] == 1
    second = sync(au, "UK-pull")["runs"][0]
    assert second["error"] is None and second["recalled"] == 1

    version_of = {o[0]["id"]: o[0]["modified"] for o in (remarked, revoked, kept)}
    for node in (uk, au):
        got = stored(node, ids)
        assert {(key[0], obj["modified"]) for key, obj in got.items()} == {
            (remarked[0]["id"], version_of[remarked[0]["id"]]),
            (revoked[0]["id"], version_of[revoked[0]["id"]]), (revoked[0]["id"], revocation["modified"]),
            (kept[0]["id"], version_of[kept[0]["id"]]),
        }
    # Recall is idempotent and quiet once applied.
    assert sync(au, "UK-pull")["runs"][0]["recalled"] == 0


def test_tombstones_reveal_nothing_hidden(nodes: dict[str, FedNode]) -> None:
    jp = nodes["JP"]
    reader = jp.tokens["AU"]  # AU has no agreement on JP: RED was never visible to it

    def tombstones(**params: int) -> dict[str, Any]:
        response = requests.get(f"{jp.api_root_url}collections/{jp.collection}/tombstones/", params=params,
                                headers={"Accept": TAXII, "Authorization": f"Bearer {reader}"}, timeout=60)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    before = tombstones()
    secret = indicator(jp.identity, marking=TLP_RED, name="red only")
    jp.post(secret)
    _delete(jp, secret[0]["id"])
    after = tombstones()
    assert secret[0]["id"] not in {entry["id"] for entry in after["tombstones"]}
    # Nor does the page's position or `more` step over the hidden deletion: its time and number stay unknown.
    assert after == before
    position = {"deleted_after": before["deleted_last"], "limit": 1}
    assert tombstones(**position) == {**before, "tombstones": [], "more": False}
    owner = requests.get(
        f"{jp.api_root_url}collections/{jp.collection}/tombstones/",
        headers={"Accept": TAXII, "Authorization": f"Bearer {jp.admin_token}"}, timeout=60,
    )
    assert secret[0]["id"] in {entry["id"] for entry in owner.json()["tombstones"]}


def sighting(of: str, producer: str, marking: str) -> dict[str, Any]:
    return {"type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}", "created": stamp(40),
            "modified": stamp(40), "sighting_of_ref": of, "where_sighted_refs": [producer],
            "created_by_ref": producer, "count": 3, "object_marking_refs": [marking]}


def test_sightings_flow_back_to_the_producer_anonymised(nodes: dict[str, FedNode]) -> None:
    uk, jp = nodes["UK"], nodes["JP"]
    # UK pulls JP's indicator; its analysts sight it. The agreement JP receives under asks for flow-back.
    uk.cli_json("agreements", "set", "uk-jp", "--sightings-flow-back")
    theirs = indicator(jp.identity, marking=TLP_CLEAR, name="jp sighted")
    jp.post(theirs)
    assert sync(uk, "JP-pull")["runs"][0]["error"] is None
    ours = indicator(uk.identity, marking=TLP_CLEAR, name="uk own")
    of_theirs = sighting(theirs[0]["id"], uk.identity, TLP_AMBER)
    strict_of_theirs = sighting(theirs[0]["id"], uk.identity, TLP_AMBER_STRICT)
    of_ours = sighting(ours[0]["id"], uk.identity, TLP_AMBER)
    assert sync(uk, "JP-push")["runs"][0]["error"] is None  # what JP may see changed: offered again, once
    uk.post(ours + [of_theirs, strict_of_theirs, of_ours])
    # The push backlog the operator reads counts what the push then sends (the indicator and the sighting of
    # it), not the sighting of JP's own indicator, which travels in the flow-back stream instead.
    [waiting] = [p for p in uk.cli_json("partners", "list")["partners"] if p["name"] == "JP-push"]
    assert (waiting["push_backlog"], waiting["push_backlog_more"]) == (2, False)

    run = sync(uk, "JP-push")["runs"][0]
    assert run["error"] is None and run["sightings_flowed"] == 1
    anonymous = anonymous_identity(uk)
    got = stored(jp, {of_theirs["id"], strict_of_theirs["id"], of_ours["id"], theirs[0]["id"]})
    assert {key[0] for key in got} == {of_theirs["id"], of_ours["id"], theirs[0]["id"]}
    flowed = next(obj for key, obj in got.items() if key[0] == of_theirs["id"])
    assert flowed == {**of_theirs, "created_by_ref": anonymous, "where_sighted_refs": [anonymous]}
    # The sighted indicator was not sent again: JP still holds only its own single version.
    assert [key for key in got if key[0] == theirs[0]["id"]] == [(theirs[0]["id"], jp_version(theirs[0]))]
    # A new sighting travels alone on the next run.
    later = {**sighting(theirs[0]["id"], uk.identity, TLP_CLEAR), "modified": stamp(50)}
    uk.post([later])
    again = sync(uk, "JP-push")["runs"][0]
    assert again["sightings_flowed"] == 1 and again["pushed"] == 0


def jp_version(obj: dict[str, Any]) -> int:
    from kizuna.stix.timestamps import parse_timestamp

    return parse_timestamp(obj["modified"])


def test_partner_status_over_http(nodes: dict[str, FedNode]) -> None:
    uk = nodes["UK"]
    url = f"{uk.api_root_url}federation/partners/"
    own = requests.get(url, headers={"Accept": TAXII, "Authorization": f"Bearer {uk.admin_token}"}, timeout=60)
    assert own.status_code == 200
    listed = {p["name"]: p for p in own.json()["partners"]}
    assert {"JP-push", "AU-push", "JP-pull"} <= set(listed)
    assert listed["JP-pull"]["status"]["state"] == "ok"
    assert listed["JP-push"]["token"] == "set"  # the secret itself never leaves
    other = requests.get(url, headers={"Accept": TAXII, "Authorization": f"Bearer {uk.tokens['JP']}"}, timeout=60)
    assert other.status_code == 403



def test_the_sync_line_says_what_was_recalled_and_sent_back() -> None:
    """`kizuna sync` prints one line a partner: recalls and sightings sent back are counts an operator acts on
    (the line said 'pulled 0 new, pushed 0' while a recall had removed an object)."""
    from kizuna.cli.partners import _run_line
    from kizuna.federation.sync import RunReport

    quiet = _run_line(RunReport("JP").as_dict())
    assert quiet == "JP: pulled 0 new (0 already here), pushed 0, quarantined 0"
    busy = _run_line(RunReport("JP", recalled=1, recalls_sent=2, sightings_flowed=3).as_dict())
    assert busy == ("JP: pulled 0 new (0 already here), pushed 0, quarantined 0, recalled 1, recalls sent 2, "
                    "sightings sent back 3")


@pytest.mark.parametrize("name", ["英国NCSC", "A" * 65, ".."])
def test_a_partner_name_that_cannot_be_used_says_what_can(name: str) -> None:
    from kizuna.federation.config import ConfigProblem, PartnerConfig

    with pytest.raises(ConfigProblem) as refused:
        PartnerConfig(name=name, api_root_url="https://partner.example/main/", mappings=())
    assert "1 to 64 ASCII letters" in str(refused.value) and "--org" in str(refused.value)
