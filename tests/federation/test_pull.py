"""Pull sync between two real ``kizuna serve`` nodes: exact, incremental, with provenance and quarantine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import create_pg_database
from tests.federation.helpers import (
    TLP_CLEAR,
    FedNode,
    add_partner,
    grant_partner,
    indicator,
    make_fed_node,
    stamp,
    sync,
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FedNode, FedNode]]:
    """UK (SQLite) produces; JP (PostgreSQL) pulls from it in pages of 7."""
    base: Path = tmp_path_factory.mktemp("pair")
    database = create_pg_database("kizuna_fed")
    uk = make_fed_node(base, "UK", "GBR")
    jp = make_fed_node(base, "JP", "JPN", database.url)
    grant_partner(uk, jp, "JPN")
    uk.start()
    try:
        add_partner(jp, uk, "pull", page_size=7)
        yield uk, jp
    finally:
        uk.stop()
        database.drop()


def test_first_pull_copies_every_version_byte_for_byte(pair: tuple[FedNode, FedNode]) -> None:
    uk, jp = pair
    objects = indicator(uk.identity, versions=4, marking=TLP_CLEAR)
    for _ in range(10):
        objects += indicator(uk.identity, versions=2)
    sco = {"type": "ipv4-addr", "spec_version": "2.1", "id": f"ipv4-addr--{uuid.uuid4()}", "value": "203.0.113.9"}
    uk.post(objects + [sco])

    run = sync(jp, "UK")["runs"][0]

    on_uk, on_jp = uk.versions(), jp.versions()
    posted = {o["id"] for o in objects} | {sco["id"]}
    assert posted <= {sid for sid, _ in on_uk}  # the node may store marking definitions beside them
    assert {sid for sid, _ in on_jp} == {sid for sid, _ in on_uk}
    assert len(on_jp) == len(on_uk) >= 25
    # Versioned objects keep their (id, modified) identity and their exact bytes.
    versioned = {k: v for k, v in on_uk.items() if not k[0].startswith("ipv4-addr")}
    assert {k: on_jp[k] for k in versioned} == versioned
    assert [b for k, b in on_jp.items() if k[0] == sco["id"]] == [orjson.dumps(sco)]
    # The OASIS TLP definitions (all five levels, and their extension) are placed by JP's own ingest, as for a
    # POST; the partner's copies of them arrive as duplicates.
    shipped = {k for k in on_uk if k[0].startswith(("marking-definition--", "extension-definition--"))}
    assert len(shipped) == 6
    assert run["pulled"] == len(on_uk) - 6 and run["duplicates"] == 6 and run["error"] is None
    assert run["pages"] >= len(on_uk) // 7  # pages of 7
    # Each version received from UK records where it came from.
    rows = jp.sql("SELECT stix_id, partner, remote_collection FROM fed_provenance")
    # (An SCO's version is the date_added of each node, so ids are compared.)
    assert {sid for sid, _ in on_uk} - {sid for sid, _ in shipped} == {sid for sid, _, _ in rows}
    assert len(rows) == len(on_uk) - 6
    assert {(p, r) for _, p, r in rows} == {("UK", uk.collection)}


def test_second_pull_is_incremental(pair: tuple[FedNode, FedNode]) -> None:
    uk, jp = pair
    before = jp.versions()
    assert sync(jp, "UK")["runs"][0]["pulled"] == 0
    new = indicator(uk.identity, versions=3)
    uk.post(new)
    run = sync(jp, "UK")["runs"][0]
    assert run["pulled"] == 3 and run["duplicates"] == 0
    after = jp.versions()
    assert {sid for sid, _ in set(after) - set(before)} == {new[0]["id"]}
    assert len(after) == len(before) + 3


def test_same_version_with_other_content_is_quarantined_not_overwritten(pair: tuple[FedNode, FedNode]) -> None:
    uk, jp = pair
    original = indicator(uk.identity)[0]
    tampered = dict(original, name="a different body under the same (id, modified)")
    jp.import_objects([tampered])
    uk.post([original])

    run = sync(jp, "UK")["runs"][0]

    assert run["quarantined"] == 1
    stored = [body for (sid, _), body in jp.versions().items() if sid == original["id"]]
    assert stored == [orjson.dumps(tampered)]
    shown = jp.cli_json("partners", "show", "UK")
    assert shown["status"]["quarantined"] >= 1
    entry = next(q for q in shown["quarantine"] if q["id"] == original["id"])
    assert "different object" in entry["reason"]
    body = jp.sql("SELECT body FROM fed_quarantine WHERE stix_id = ?", (original["id"],))[0][0]
    assert orjson.loads(bytes(body)) == original


def test_status_and_cursor_are_visible_in_the_cli(pair: tuple[FedNode, FedNode]) -> None:
    uk, jp = pair
    listed = jp.cli_json("partners", "list")["partners"]
    assert [p["name"] for p in listed] == ["UK"]
    assert listed[0]["token"] == "set" and uk.tokens["JP"] not in str(listed)
    assert listed[0]["status"]["state"] == "ok" and listed[0]["status"]["last_error"] is None
    cursors = jp.cli_json("partners", "show", "UK")["cursors"]
    # The pull cursor, the digest of the terms it read under (a Kizuna partner names them), and the recall
    # cursor of the tombstones extension (a Kizuna partner offers it).
    assert [(c["direction"], c["remote"]) for c in cursors] == [
        ("pull", uk.collection), ("pull-terms", uk.collection), ("recall", uk.collection)]
    assert len(cursors[1]["position"]) == 64
    assert orjson.loads(cursors[0]["position"])["next"] is None
    assert {c["local_name"] for c in cursors} == {"shared"}  # the local collection by name beside its id


def test_unknown_partner_and_bad_mapping_are_refused(pair: tuple[FedNode, FedNode]) -> None:
    _, jp = pair
    assert "no partner" in jp.cli("sync", "XX", check=False).stderr
    bad = jp.cli("partners", "add", "X", "--url", "http://127.0.0.1:1/main/", "--map", "shared", check=False)
    assert bad.returncode != 0 and "LOCAL=REMOTE" in bad.stderr
    missing = jp.cli("partners", "add", "X", "--url", "http://127.0.0.1:1/main/", "--map", "nope=x", check=False)
    assert missing.returncode != 0 and "no collection" in missing.stderr


def test_down_partner_backs_off_with_a_clear_status(pair: tuple[FedNode, FedNode]) -> None:
    _, jp = pair
    jp.cli_json("partners", "add", "GONE", "--url", "http://127.0.0.1:9/main/", "--map", "shared=x:pull",
                "--token", "t")
    first = sync(jp, "GONE", check=False)["runs"][0]
    second = sync(jp, "GONE", check=False)["runs"][0]
    assert first["error"] and "cannot reach" in first["error"] and second["error"]
    status = jp.cli_json("partners", "show", "GONE")["status"]
    assert status["state"] == "backoff" and status["consecutive_failures"] == 2
    assert status["next_attempt"] > stamp(0)
    jp.cli_json("partners", "remove", "GONE")
    assert [p["name"] for p in jp.cli_json("partners", "list")["partners"]] == ["UK"]
