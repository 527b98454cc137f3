"""`kizuna objects`: a collection read and deleted as a chosen principal, under the TAXII rules.

Every test runs on a real node (SQLite and PostgreSQL) with a real server, so the CLI's view can be
compared with what the same principal receives over TAXII.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests

from tests.conftest import TAXII, Node, kizuna, kizuna_json
from tests.policy_node.conftest import AMBER_STRICT, CLEAR, GREEN


def _stamp(second: int) -> str:
    return f"2026-02-01T10:00:{second:02d}.000Z"


def _indicator(name: str, marking: str | None = None, producer: str | None = None, modified: int = 0,
               object_id: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "indicator", "spec_version": "2.1", "id": object_id or f"indicator--{uuid.uuid4()}",
        "created": _stamp(0), "modified": _stamp(modified), "name": name, "pattern_type": "stix",
        "pattern": "[ipv4-addr:value = '198.51.100.7']", "valid_from": _stamp(0),
    }
    if marking:
        obj["object_marking_refs"] = [marking]
    if producer:
        obj["created_by_ref"] = producer
    return obj


def _token_id(node: Node, name: str) -> str:
    return node.tokens[name][3:].partition("_")[0]


def _home_identity(node: Node) -> str:
    identity: str = kizuna_json(node.data_dir, "status")["identity"]
    return identity


def _ids(envelope: dict[str, Any]) -> list[str]:
    return [obj["id"] for obj in envelope.get("objects", [])]


def _failure(node: Node, *args: str) -> tuple[str, dict[str, Any]]:
    """The one stderr line and the --json error object of a command that must fail."""
    text = kizuna(node.data_dir, *args, check=False)
    assert text.returncode == 1 and text.stdout == "" and text.stderr.count("\n") == 1, text
    as_json = kizuna(node.data_dir, *args, "--json", check=False)
    assert as_json.returncode == 1
    return text.stderr, json.loads(as_json.stdout)["error"]


def test_amber_strict_object_is_absent_for_a_partner_exactly_like_a_missing_one(node: Node) -> None:
    home = _home_identity(node)
    clear = _indicator("shared with everyone", CLEAR, home)
    strict = _indicator("for our eyes", AMBER_STRICT, home)
    node.post([clear, strict])
    absent = f"indicator--{uuid.uuid4()}"
    both = f"{clear['id']},{strict['id']}"

    own = kizuna_json(node.data_dir, "objects", "list", "-c", "shared", "--id", both)
    assert sorted(_ids(own)) == sorted([clear["id"], strict["id"]])  # the node's own organisation sees both
    partner = ("--as-org", "JPCERT/CC")
    assert _ids(kizuna_json(node.data_dir, "objects", "list", "-c", "shared", "--id", both, *partner)) == [clear["id"]]
    listed = kizuna(node.data_dir, "objects", "list", "-c", "shared", "--id", both, *partner).stdout
    assert clear["id"] in listed and strict["id"] not in listed and "for our eyes" not in listed

    for command in ("show", "versions", "delete"):
        hidden_text, hidden_json = _failure(node, "objects", command, strict["id"], "-c", "shared", *partner)
        absent_text, absent_json = _failure(node, "objects", command, absent, "-c", "shared", *partner)
        assert hidden_text.replace(strict["id"], "ID") == absent_text.replace(absent, "ID")
        assert hidden_text == f"kizuna objects {command}: no object '{strict['id']}' in collection shared\n"
        assert hidden_json["message"].replace(strict["id"], "ID") == absent_json["message"].replace(absent, "ID")
        assert hidden_json["code"] == absent_json["code"] == "not-found"

    # The partner's own token says the same, and the object is untouched for its owner.
    as_token = ("--as-token-id", _token_id(node, "reader"))
    assert _ids(kizuna_json(node.data_dir, "objects", "list", "-c", "shared", "--id", both, *as_token)) == [clear["id"]]
    token_text, _ = _failure(node, "objects", "show", strict["id"], "-c", "shared", *as_token)
    assert token_text == f"kizuna objects show: no object '{strict['id']}' in collection shared\n"
    shown = kizuna_json(node.data_dir, "objects", "show", strict["id"], "-c", "shared")
    assert _ids(shown) == [strict["id"]]


def test_a_collection_the_token_may_not_use_is_reported_as_absent(node: Node) -> None:
    outsider = ("--as-token-id", _token_id(node, "outsider"))  # reads "other" only
    hidden, _ = _failure(node, "objects", "list", "-c", "shared", *outsider)
    missing, _ = _failure(node, "objects", "list", "-c", "no-such-collection", *outsider)
    assert hidden == "kizuna objects list: no collection 'shared'\n"
    assert missing == "kizuna objects list: no collection 'no-such-collection'\n"


def test_json_is_what_the_same_token_receives_over_taxii(node: Node) -> None:
    home = _home_identity(node)
    objects = [_indicator(f"taxii shape {n}", GREEN, home) for n in range(3)]
    node.post(objects)
    ids = ",".join(o["id"] for o in objects)
    cli = kizuna_json(node.data_dir, "objects", "list", "-c", "shared", "--id", ids, "--limit", "2",
                      "--as-token-id", _token_id(node, "writer"))
    http = requests.get(node.collection_url() + "objects/", params={"match[id]": ids, "limit": "2"},
                        headers={"Accept": TAXII, "Authorization": f"Bearer {node.tokens['writer']}"})
    assert http.status_code == 200
    expected = http.json()
    assert cli["more"] is expected["more"] is True
    assert cli["objects"] == expected["objects"] and len(cli["objects"]) == 2
    assert cli["objects"][0] == objects[0]  # byte-faithful STIX, not a summary


def test_listing_shows_names_not_internal_keys(node: Node) -> None:
    home = _home_identity(node)
    named = _indicator("C2 beacon of campaign Kestrel", GREEN, home)
    node.post([named])
    text = kizuna(node.data_dir, "objects", "list", "-c", "shared", "--id", named["id"]).stdout
    header, line = text.splitlines()
    assert header.split() == ["ADDED", "TYPE", "TLP", "PRODUCER", "NAME", "ID"]
    for shown in ("indicator", "TLP:GREEN", "NCSC UK", "C2 beacon of campaign Kestrel", named["id"]):
        assert shown in line
    assert home not in text and GREEN not in text  # producer and marking by name, not by id
    shown = kizuna(node.data_dir, "objects", "show", named["id"], "-c", "shared").stdout
    assert "producer: NCSC UK" in shown and "TLP:      TLP:GREEN" in shown
    assert json.loads(shown[shown.index("{"):]) == named


def test_filters_versions_and_paging(node: Node) -> None:
    object_id = f"indicator--{uuid.uuid4()}"
    versions = [_indicator("versioned", CLEAR, modified=n, object_id=object_id) for n in (1, 2, 3)]
    others = [_indicator(f"page {n}", CLEAR) for n in range(5)]
    for obj in versions + others:  # one POST each: distinct dates added to filter on
        node.post([obj])
    ids = ",".join([object_id] + [o["id"] for o in others])

    def listing(*extra: str) -> dict[str, Any]:
        result: dict[str, Any] = kizuna_json(node.data_dir, "objects", "list", "-c", "shared", "--id", ids, *extra)
        return result

    only = kizuna_json(node.data_dir, "objects", "list", "-c", "shared", "--id", object_id, "--version", "all")
    assert [o["modified"] for o in only["objects"]] == [_stamp(1), _stamp(2), _stamp(3)]
    first = kizuna_json(node.data_dir, "objects", "list", "-c", "shared", "--id", object_id, "--version", "first")
    assert [o["modified"] for o in first["objects"]] == [_stamp(1)]
    exact = kizuna_json(node.data_dir, "objects", "list", "-c", "shared", "--id", object_id,
                        "--version", "2026-02-01T10:00:02.000Z")
    assert [o["modified"] for o in exact["objects"]] == [_stamp(2)]
    assert listing("--spec-version", "2.0") == {"more": False}
    assert listing("--type", "malware") == {"more": False}

    # Paging with --next walks every latest version once, in order, and matches one big page.
    whole = listing()["objects"]
    assert len(whole) == 6
    seen: list[str] = []
    page = listing("--limit", "2")
    while True:
        seen += _ids(page)
        if not page["more"]:
            break
        page = listing("--limit", "2", "--next", page["next"])
    assert seen == [o["id"] for o in whole]
    text = kizuna(node.data_dir, "objects", "list", "-c", "shared", "--id", ids, "--limit", "2").stdout
    assert "--next " in text.splitlines()[-1]

    # --added-after: exactly what was added after the second object of the listing.
    manifest = requests.get(node.collection_url() + "manifest/", params={"match[id]": ids},
                            headers={"Accept": TAXII, "Authorization": f"Bearer {node.tokens['writer']}"}).json()
    after = manifest["objects"][1]["date_added"]
    assert _ids(listing("--added-after", after)) == [o["id"] for o in whole[2:]]
    # A date is midnight UTC at its start, as for search and tokens; a bad one is a usage error.
    assert _ids(listing("--added-after", "2000-01-01")) == [o["id"] for o in whole]
    assert listing("--added-after", "2999-01-01") == {"more": False}
    refused = kizuna(node.data_dir, "objects", "list", "-c", "shared", "--added-after", "2026-13-01", check=False)
    assert refused.returncode == 2 and "is not a date or timestamp such as" in refused.stderr
    history = kizuna_json(node.data_dir, "objects", "versions", object_id, "-c", "shared")
    assert history["versions"] == ["2026-02-01T10:00:01.000000Z", "2026-02-01T10:00:02.000000Z",
                                   "2026-02-01T10:00:03.000000Z"]
    for command in ("show", "versions", "delete"):  # a malformed id is named as such, as TAXII does (400)
        malformed, error = _failure(node, "objects", command, "not-an-id", "-c", "shared")
        assert malformed == f"kizuna objects {command}: 'not-an-id' is not a STIX identifier (type--UUID)\n"
    bad, error = _failure(node, "objects", "list", "-c", "shared", "--version", "newest")
    assert bad.startswith("kizuna objects list: --version value 'newest'") and error["code"] == "invalid"
    # A version the object does not have is a failure, as an absent object is, not an empty success.
    none, error = _failure(node, "objects", "show", object_id, "-c", "shared", "--version", "2026-02-01T10:00:09Z")
    assert none.startswith(f"kizuna objects show: no version of {object_id} matches") and error["code"] == "not-found"


def test_delete_a_version_then_the_object_audited_and_recalled(node: Node) -> None:
    object_id = f"indicator--{uuid.uuid4()}"
    node.post([_indicator("to delete", CLEAR, modified=n, object_id=object_id) for n in (1, 2)])

    refused, _ = _failure(node, "objects", "delete", object_id, "-c", "shared",
                          "--as-token-id", _token_id(node, "reader"))  # may read, may not write
    assert refused == "kizuna objects delete: deleting needs both read and write access to this collection\n"

    one = kizuna_json(node.data_dir, "objects", "delete", object_id, "-c", "shared", "--version", "first")
    assert one == {"id": object_id, "collection": node.collection, "deleted": 1}
    left = kizuna_json(node.data_dir, "objects", "versions", object_id, "-c", "shared")
    assert left["versions"] == ["2026-02-01T10:00:02.000000Z"]
    text = kizuna(node.data_dir, "objects", "delete", object_id, "-c", "shared").stdout
    assert text.strip() == f"Deleted 1 version of {object_id} from shared"
    gone, _ = _failure(node, "objects", "show", object_id, "-c", "shared")
    assert gone == f"kizuna objects show: no object '{object_id}' in collection shared\n"
    http = requests.get(node.collection_url() + f"objects/{object_id}/",
                        headers={"Accept": TAXII, "Authorization": f"Bearer {node.tokens['writer']}"})
    assert http.status_code == 404

    records = [json.loads(line) for line in kizuna(node.data_dir, "audit", "export").stdout.splitlines()]
    deletes = [r for r in records if r["kind"] == "delete" and r["body"]["id"] == object_id]
    assert [r["body"]["deleted"] for r in deletes] == [1, 1]
    assert all(r["principal"].startswith("admin-as-org:") for r in deletes)
    # Federation learns of it: the deleted versions are in the collection's tombstones.
    tombstones = requests.get(node.collection_url() + "tombstones/",
                              headers={"Accept": TAXII, "Authorization": f"Bearer {node.tokens['writer']}"})
    assert tombstones.status_code == 200
    assert object_id in {entry["id"] for entry in tombstones.json()["tombstones"]}
