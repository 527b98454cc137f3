"""`kizuna tokens`: expiry, readable listings, and refusals that are one line — on a real server."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import requests

from kizuna.core.node import Node as KizunaNode
from tests.conftest import TAXII, Node, kizuna, kizuna_json


def parse_ts(text: str) -> float:
    """Seconds since the epoch of a TAXII timestamp."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _listed(node: Node, token_id: str) -> dict[str, object]:
    rows = kizuna_json(node.data_dir, "tokens", "list")["tokens"]
    return next(row for row in rows if row["id"] == token_id)


def _get(node: Node, secret: str) -> requests.Response:
    return requests.get(node.collection_url(), headers={"Accept": TAXII, "Authorization": f"Bearer {secret}"})


def _agreed_indicator(node: Node, partner: str, country: str, agreement: str, max_tlp: str, stix_id: str,
                      address: str, marking: str) -> dict[str, object]:
    """A new partner organisation, an agreement with it over the collection `shared`, and an indicator by the
    node's own organisation (NCSC UK) with one marking, stored there."""
    data = node.data_dir
    kizuna_json(data, "orgs", "create", partner, "--country", country)
    kizuna_json(data, "agreements", "set", agreement, "--partner", partner, "--max-tlp", max_tlp,
                "--collections", "shared")
    own = next(o["id"] for o in kizuna_json(data, "orgs", "list")["organisations"] if o["name"] == "NCSC UK")
    made = {"type": "indicator", "spec_version": "2.1", "id": stix_id, "created_by_ref": own,
            "created": "2026-12-01T00:00:00.000Z", "modified": "2026-12-01T00:00:00.000Z", "name": f"for {partner}",
            "pattern_type": "stix", "pattern": f"[ipv4-addr:value = '{address}']", "valid_from": "2026-12-01T00:00:00Z",
            "object_marking_refs": [marking]}
    assert node.post([made])["success_count"] == 1
    return made


def _readable_ids(node: Node, secret: str) -> set[str]:
    """The ids a token reads in the node's collection over TAXII."""
    answer = requests.get(node.collection_url() + "objects/", timeout=30,
                          headers={"Accept": TAXII, "Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200, answer.text
    return {o["id"] for o in answer.json().get("objects", [])}


def test_expired_token_is_refused_exactly_like_an_unknown_one(node: Node) -> None:
    unknown = _get(node, "kz_00000000deadbeef_" + "x" * 43)
    assert unknown.status_code == 401
    created = kizuna_json(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", "shared",
                          "--expires", "6s", "--label", "short-lived")
    expires = parse_ts(created["expires"])
    asked_at = time.time()
    first = _get(node, created["token"])
    # Valid until its expiry: had the request gone out in time, it must have been served.
    assert first.status_code == 200 or asked_at >= expires, first.text
    deadline = expires + 30
    refused = first
    while refused.status_code != 401 and time.time() < deadline:
        time.sleep(0.2)  # polling the server for the refusal, bounded by the deadline
        refused = _get(node, created["token"])
    assert refused.status_code == 401, "the token still works after its expiry"
    assert time.time() >= expires  # never refused early
    assert refused.json() == unknown.json()
    assert refused.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]
    row = _listed(node, created["id"])
    assert (row["state"], row["expires"], row["label"]) == ("expired", created["expires"], "short-lived")
    text = kizuna(node.data_dir, "tokens", "list").stdout
    line = next(line for line in text.splitlines() if line.startswith(created["id"]))
    assert line.split()[-1] == "expired" and created["expires"][:19] in line
    # `status` counts it as expired, not active, exactly as `tokens list` states them.
    states = [row["state"] for row in kizuna_json(node.data_dir, "tokens", "list")["tokens"]]
    counts = kizuna_json(node.data_dir, "status")["tokens"]
    assert counts == {state: states.count(state) for state in ("active", "expired", "revoked")}


@pytest.mark.parametrize("given, seconds", [("30d", 30 * 86400), ("12h", 12 * 3600), ("90m", 90 * 60)])
def test_expiry_as_a_duration(node: Node, given: str, seconds: int) -> None:
    before = time.time()
    created = kizuna_json(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", "shared",
                          "--expires", given)
    after = time.time()
    assert before + seconds - 1 <= parse_ts(created["expires"]) <= after + seconds + 1
    assert _listed(node, created["id"])["state"] == "active"
    assert _get(node, created["token"]).status_code == 200


def test_expiry_as_an_iso_date_and_bad_forms(node: Node) -> None:
    year = dt.datetime.now(dt.UTC).year
    created = kizuna_json(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", "shared",
                          "--expires", f"{year + 4}-03-31")
    assert created["expires"] == f"{year + 4}-03-31T00:00:00.000000Z"
    assert _listed(node, created["id"])["expires"] == f"{year + 4}-03-31T00:00:00.000000Z"
    for given, reason in [("3 weeks", "--expires '3 weeks' is neither a duration"),
                          ("2001-01-01", "not in the future"), ("0d", "neither a duration"),
                          ("99999999999d", "'99999999999d' is out of range"),
                          # Valid moments, only too far off to be meant (9999999d is the year 29406).
                          ("9999999d", "--expires '9999999d' is more than 5 years from now"),
                          ("1828d", "is more than 5 years from now"),
                          (f"{year + 6}-01-01", "is more than 5 years from now")]:
        result = kizuna(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", "shared",
                        "--expires", given, check=False)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("kizuna tokens create: ")
        assert reason in result.stderr, result.stderr


def test_a_rotation_grace_is_a_bounded_duration(node: Node) -> None:
    token_id = kizuna_json(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", "shared")["id"]
    for given, reason in [("-1h", "--grace '-1h' is not a duration"), ("2027-01-01", "is not a duration"),
                          ("nan", "is not a duration"), ("99999999999d", "is out of range"),
                          ("91d", "is longer than 90 days")]:
        result = kizuna(node.data_dir, "tokens", "rotate", token_id, "--grace", given, check=False)
        assert result.returncode == 1 and result.stderr.startswith("kizuna tokens rotate: ")
        assert reason in result.stderr and result.stderr.count("\n") == 1, result.stderr
    ended = kizuna(node.data_dir, "tokens", "rotate", token_id, "--grace", "0")
    assert "the old secret no longer works" in ended.stdout
    kept = kizuna(node.data_dir, "tokens", "rotate", token_id, "--grace", "90d")
    assert "the old secret works until " in kept.stdout
    unknown = kizuna(node.data_dir, "tokens", "rotate", "0000000000000000", "--json", check=False)
    assert unknown.returncode == 1 and json.loads(unknown.stdout)["error"]["code"] == "not-found"


def test_list_names_organisation_rights_label_dates_and_state(node: Node) -> None:
    created = kizuna_json(node.data_dir, "tokens", "create", "--org", "NCSC UK", "--read", "shared",
                          "--read", "other", "--write", "shared", "--label", "soc pipeline")
    row = _listed(node, created["id"])
    assert row["organisation"] == "NCSC UK"
    assert (sorted(row["read"]), row["write"]) == (["other", "shared"], ["shared"])
    assert (row["label"], row["state"], row["expires"], row["revoked"]) == ("soc pipeline", "active", None, None)
    assert parse_ts(row["created"]) <= time.time()
    text = kizuna(node.data_dir, "tokens", "list").stdout
    assert text.splitlines()[0].split() == ["ID", "ORGANISATION", "RIGHTS", "LABEL", "CREATED", "EXPIRES", "STATE"]
    line = next(line for line in text.splitlines() if line.startswith(created["id"]))
    assert "NCSC UK" in line and "r:shared" in line and "r:other" in line and "w:shared" in line
    assert "soc pipeline" in line and "never" in line and line.endswith("active")
    # No internal keys: identity ids and collection row numbers stay inside the node.
    assert "identity--" not in text and "collection_pk" not in text and created["token"] not in text
    kizuna_json(node.data_dir, "tokens", "revoke", created["id"])
    assert _listed(node, created["id"])["state"] == "revoked"


def test_the_list_stays_in_columns_with_japanese_names(node: Node) -> None:
    """A Japanese character takes two columns of a terminal: padding by characters broke the table."""
    import re

    from kizuna.cli.common import display_width

    kizuna_json(node.data_dir, "orgs", "create", "内閣サイバーセキュリティセンター", "--country", "JPN")
    kizuna_json(node.data_dir, "tokens", "create", "--org", "内閣サイバーセキュリティセンター", "--read", "shared",
                "--label", "共有フィード")
    lines = kizuna(node.data_dir, "tokens", "list").stdout.splitlines()
    created_at = {display_width(line[:match.start()]) for line in lines[1:]
                  if (match := re.search(r"\d{4}-\d\d-\d\dT", line))}
    assert created_at == {display_width(lines[0][:lines[0].index("CREATED")])}, lines


def test_create_without_any_right_is_refused_with_the_reason(node: Node) -> None:
    before = len(kizuna_json(node.data_dir, "tokens", "list")["tokens"])
    result = kizuna(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--label", "nothing", check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "kizuna tokens create: a token needs at least one right: give --read and/or --write COLLECTION\n"
    )
    as_json = kizuna(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--json", check=False)
    assert as_json.returncode == 1
    assert "at least one right" in json.loads(as_json.stdout)["error"]["message"]
    assert len(kizuna_json(node.data_dir, "tokens", "list")["tokens"]) == before


def test_revoking_an_unknown_or_revoked_token_is_one_line(node: Node) -> None:
    result = kizuna(node.data_dir, "tokens", "revoke", "feedfacecafebeef", check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("kizuna tokens revoke: no active token 'feedfacecafebeef'")
    created = kizuna_json(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", "shared")
    kizuna_json(node.data_dir, "tokens", "revoke", created["id"])
    again = kizuna(node.data_dir, "tokens", "revoke", created["id"], "--json", check=False)
    assert again.returncode == 1
    error = json.loads(again.stdout)["error"]
    assert "was revoked at" in error["message"] and error["code"] == "invalid"


def test_the_text_list_shows_what_binds_a_token(node: Node) -> None:
    created = kizuna_json(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", "shared")
    fingerprint = "ab" * 32
    kizuna_json(node.data_dir, "tokens", "bind-cert", created["id"], "--cert-fingerprint", fingerprint)
    line = next(line for line in kizuna(node.data_dir, "tokens", "list").stdout.splitlines()
                if line.startswith(created["id"]))
    assert f"cert:{fingerprint[:16]}" in line  # it was only in --json
    for command in (("bind-cert", "0000000000000000", "--unbind"), ("rotate", "0000000000000000")):
        unknown = kizuna(node.data_dir, "tokens", *command, check=False)
        assert unknown.stderr == (f"kizuna tokens {command[0]}: no token '0000000000000000'; "
                                  "see `kizuna tokens list`\n")


def test_a_revoked_token_is_not_bound_to_a_certificate_as_it_is_not_rotated(node: Node) -> None:
    created = kizuna_json(node.data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", "shared")
    kizuna_json(node.data_dir, "tokens", "revoke", created["id"])
    for command in (("bind-cert", created["id"], "--cert-fingerprint", "ab" * 32),
                    ("bind-cert", created["id"], "--unbind"), ("rotate", created["id"])):
        refused = kizuna(node.data_dir, "tokens", *command, check=False)
        assert (refused.returncode, refused.stdout) == (1, "")
        assert refused.stderr == (f"kizuna tokens {command[0]}: token {created['id']} is revoked: "
                                  "create a new one instead\n")
    as_json = kizuna(node.data_dir, "tokens", "bind-cert", created["id"], "--unbind", "--json", check=False)
    assert json.loads(as_json.stdout)["error"]["code"] == "invalid"
    assert _listed(node, created["id"])["certificate"] is None
    bound = kizuna(node.data_dir, "audit", "export", "--kind", "token-certificate-bound").stdout.splitlines()
    assert not [line for line in bound if json.loads(line)["body"]["token"] == created["id"]]


def test_a_token_reads_only_under_an_agreement_with_its_own_organisation(node: Node) -> None:
    """An agreement is made with one partner. Binding another organisation's token to it would hand that
    organisation what was agreed with someone else (here TLP:AMBER+STRICT agreed with KrCERT only)."""
    data = node.data_dir
    strict = _agreed_indicator(node, "KrCERT/CC", "KOR", "uk-kr", "amber+strict",
                               "indicator--3f1d7e4a-2c55-4b8e-9d0a-5b7c1e2f9a01", "198.51.100.77",
                               "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003")
    # Refused when made, in one line, by each way of binding a token or a partner.
    made = kizuna(data, "tokens", "create", "--org", "JPCERT/CC", "--read", "shared", "--agreement", "uk-kr",
                  check=False)
    assert made.returncode != 0 and "another organisation" in made.stderr and len(made.stderr.splitlines()) == 1
    plain = kizuna_json(data, "tokens", "create", "--org", "JPCERT/CC", "--read", "shared")
    bound = kizuna(data, "tokens", "bind", plain["id"], "uk-kr", "--json", check=False)
    assert bound.returncode != 0 and "another organisation" in json.loads(bound.stdout)["error"]["message"]
    partner = kizuna(data, "partners", "add", "jp-node", "--url", "http://127.0.0.1:9/main/", "--map",
                     "shared=shared:push", "--org", "JPCERT/CC", "--agreement", "uk-kr", check=False)
    assert partner.returncode != 0 and "another organisation" in partner.stderr
    # KrCERT's own token reads it under the agreement.
    kr = kizuna_json(data, "tokens", "create", "--org", "KrCERT/CC", "--read", "shared", "--agreement", "uk-kr")
    assert strict["id"] in _readable_ids(node, kr["token"])
    # The agreement moves to another partner: the token bound to it is no longer its partner's, and sees
    # nothing under it (fails closed) rather than what is now agreed with someone else.
    kizuna_json(data, "agreements", "set", "uk-kr", "--partner", "JPCERT/CC")
    assert _readable_ids(node, kr["token"]) == set()
    # The binding refused above, made anyway in the store (as a node upgraded with one would hold it), is
    # no way round: JPCERT/CC's token under KrCERT's agreement sees nothing of it.
    kizuna_json(data, "agreements", "set", "uk-kr", "--partner", "KrCERT/CC")
    assert strict["id"] in _readable_ids(node, kr["token"])
    opened = KizunaNode.open(data)
    try:
        opened.store.set_token_agreement(plain["id"], "uk-kr")
    finally:
        opened.close()
    assert _readable_ids(node, plain["token"]) == set()


def test_agreement_releasability_and_producers_are_checked(node: Node) -> None:
    data = node.data_dir
    # REL TO tokens are written upper case in markings: a lower-case country is taken as that country.
    stored = kizuna_json(data, "agreements", "set", "uk-jp-rel", "--partner", "JPCERT/CC", "--releasability", "gbr,jpn")
    assert stored["releasability"] == ["GBR", "JPN"]
    for option, value in (("--releasability", "XXX"), ("--releasability", "identity--nope"), ("--producers", "bogus")):
        refused = kizuna(data, "agreements", "set", "uk-jp-rel", option, value, check=False)
        assert refused.returncode != 0 and value in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert kizuna_json(data, "agreements", "show", "uk-jp-rel")["versions"][-1]["releasability"] == ["GBR", "JPN"]


def test_an_agreement_releasing_other_producers_amber_says_where_it_goes(node: Node) -> None:
    """TLP 2.0 lets a recipient pass TLP:AMBER to its own organisation and clients only; an agreement that
    releases AMBER from any producer to an organisation that is not a client says that AMBER received from
    partner nodes stays withheld from it, and how to make it a client."""
    data = node.data_dir
    own = next(o["id"] for o in kizuna_json(data, "orgs", "list")["organisations"] if o["name"] == "NCSC UK")
    wide = kizuna_json(data, "agreements", "set", "uk-jp-amber", "--partner", "JPCERT/CC", "--max-tlp", "amber")
    assert len(wide["notes"]) == 1 and "JPCERT/CC" in wide["notes"][0] and "not a client" in wide["notes"][0]
    assert ("note: TLP:AMBER that this node received from partner nodes does not reach JPCERT/CC"
            in kizuna(data, "agreements", "set", "uk-jp-amber").stdout)
    assert "--client-of 'NCSC UK'" in wide["notes"][0]  # the command that makes it one, quoted for a shell
    assert kizuna_json(data, "agreements", "set", "uk-jp-amber", "--producers", own)["notes"] == []
    kizuna_json(data, "policy", "org", "JPCERT/CC", "--client-of", "NCSC UK")
    assert kizuna_json(data, "agreements", "set", "uk-jp-amber", "--producers", "*")["notes"] == []
    # A peer node is no organisation: the note names what decides, the organisation of its partner entry.
    peer = kizuna_json(data, "agreements", "set", "uk-peer", "--partner", "node:peer", "--max-tlp", "amber")
    assert len(peer["notes"]) == 2 and "node:peer" in peer["notes"][0] and "(--org)" in peer["notes"][0]
    assert peer["notes"][1].startswith("no partner entry 'peer' yet")  # `partners add peer --agreement` binds it
    # This node's own organisation is the recipient: nothing relayed stops for it, so there is nothing to say.
    assert kizuna_json(data, "agreements", "set", "uk-own", "--partner", "NCSC UK", "--max-tlp", "amber")["notes"] == []
    assert kizuna_json(data, "agreements", "set", "uk-jp-green", "--partner", "JPCERT/CC",
                       "--max-tlp", "green")["notes"] == []


def test_a_removed_agreement_releases_nothing_and_names_who_was_bound_to_it(node: Node) -> None:
    data = node.data_dir
    amber = _agreed_indicator(node, "CERT-EU", "BEL", "uk-eu", "amber",
                              "indicator--8a0c4d1e-7b2f-4e61-9c3a-2d5e6f7a8b90", "198.51.100.78",
                              "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421")
    eu = kizuna_json(data, "tokens", "create", "--org", "CERT-EU", "--read", "shared", "--agreement", "uk-eu",
                     "--label", "eu sync")
    kizuna_json(data, "partners", "add", "eu-node", "--url", "http://127.0.0.1:9/main/", "--map",
                "shared=shared:push", "--org", "CERT-EU", "--agreement", "uk-eu", "--token", "t")

    assert amber["id"] in _readable_ids(node, eu["token"])
    removed = kizuna_json(data, "agreements", "remove", "uk-eu")
    assert removed["version"] == 2 and removed["removed"] is True
    assert removed["tokens"] == [{"id": eu["id"], "organisation": "CERT-EU", "label": "eu sync"}]
    assert removed["partners"] == ["eu-node"]
    # Bound still, and reading nothing: not what the node's agreements with CERT-EU's organisation would give.
    assert _readable_ids(node, eu["token"]) == set()
    assert "uk-eu" not in [a["id"] for a in kizuna_json(data, "agreements", "list")["agreements"]]
    shown = kizuna(data, "agreements", "show", "uk-eu").stdout
    assert "uk-eu v2 (removed)" in shown
    again = kizuna(data, "agreements", "remove", "uk-eu", check=False)
    assert again.returncode != 0 and again.stderr == "kizuna agreements remove: no agreement 'uk-eu'\n"
    # Made again, as a later version, it releases again to the token still bound to it.
    kizuna_json(data, "agreements", "set", "uk-eu", "--partner", "CERT-EU", "--max-tlp", "amber",
                "--collections", "shared")
    assert amber["id"] in _readable_ids(node, eu["token"])
