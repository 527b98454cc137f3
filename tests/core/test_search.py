"""Full-text search (core/search.py) on real SQLite files and a real PostgreSQL database.

NCSC UK runs the node and produces the content. JPCERT/CC reads with a plain token under an agreement up to
TLP:AMBER (never another organisation's AMBER+STRICT); ACSC reads under an agreement capped at TLP:GREEN, so a
description marked AMBER at field level is removed from its copy. Every assertion compares what a
principal finds with what it is entitled to read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kizuna.core.errors import BadRequest, NotFound
from kizuna.core.ingest import prepare
from kizuna.core.node import Node
from kizuna.core.principal import NODE_ADMIN, Principal
from kizuna.core.search import SearchFilters, SearchResults
from kizuna.policy import TLP2_IDS, TlpLevel, build_rel_to_marking
from kizuna.stix.search_text import display_name, matches, searchable_text
from kizuna.stix.timestamps import parse_timestamp
from kizuna.store.base import NewVersion, VersionQuery, VersionSelector

CLEAR, GREEN, AMBER, AMBER_STRICT, RED = (TLP2_IDS[level] for level in TlpLevel)


@dataclass
class World:
    node: Node
    uk: str
    jp: Principal
    au: Principal
    uk_reader: Principal

    def add(self, *objects: dict[str, Any], collection: str = "shared") -> None:
        report = self.node.import_objects(self.node.find_collection(collection), list(objects))
        assert not report.failures, report.failures

    def ids(self, principal: Principal, text: str, **filters: Any) -> list[str]:
        return [hit.id for hit in self.search(principal, text, **filters).hits]

    def search(self, principal: Principal, text: str, limit: int = 50, **filters: Any) -> SearchResults:
        return self.node.search(principal, text, SearchFilters(**filters), limit=limit)


@pytest.fixture
def world(store_url: str, tmp_path: Path) -> Iterator[World]:
    node = Node.init(tmp_path / "node", store_url, org_name="NCSC UK", country="GBR")
    shared = node.create_collection("Shared indicators", alias="shared").id
    other = node.create_collection("Other", alias="other").id
    node.create_organisation("JPCERT/CC", "JPN")
    node.create_organisation("ACSC", "AUS")
    node.set_agreement("uk-jp", "JPCERT/CC", max_tlp=TlpLevel.AMBER)
    node.set_agreement("uk-au", "ACSC", max_tlp=TlpLevel.GREEN)
    principals = []
    for org, agreement in (("JPCERT/CC", None), ("ACSC", "uk-au"), ("NCSC UK", None)):
        _, secret = node.create_token(org, read=[shared], agreement=agreement)
        principal = node.authenticate(secret)
        assert principal is not None
        principals.append(principal)
    node.create_token("NCSC UK", read=[other])
    try:
        yield World(node, node.home_organisation_id or "", *principals)
    finally:
        node.close()


def sdo(stix_type: str, producer: str, markings: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": stix_type, "spec_version": "2.1", "id": f"{stix_type}--{uuid.uuid4()}",
        "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z", "created_by_ref": producer,
    }
    if markings:
        obj["object_marking_refs"] = markings
    if stix_type == "indicator":
        obj.update(pattern_type="stix", valid_from="2026-03-01T00:00:00Z")
        obj.setdefault("pattern", "[ipv4-addr:value = '192.0.2.1']")
    if stix_type == "malware":
        obj.update(is_family=False)
    obj.update(fields)
    return obj


def test_english_words_and_pattern_values_are_found(world: World) -> None:
    phishing = sdo("indicator", world.uk, [GREEN], name="Spear-phishing sender",
                   description="Mail sent to ministry staff", pattern="[email-addr:value = 'hr@example.net']")
    scanner = sdo("indicator", world.uk, [GREEN], name="Scanner",
                  pattern="[ipv4-addr:value = '198.51.100.77']")
    world.add(phishing, scanner)
    assert world.ids(world.jp, "phishing") == [phishing["id"]]
    assert world.ids(world.jp, "MINISTRY") == [phishing["id"]]
    assert world.ids(world.jp, "198.51.100.77") == [scanner["id"]]
    assert world.ids(world.jp, "hr@example.net") == [phishing["id"]]
    assert world.ids(world.jp, "ministry scanner") == []  # every word must occur in one object
    [hit] = world.search(world.jp, "198.51.100.77").hits
    assert (hit.name, hit.tlp, hit.collection) == ("Scanner", "TLP:GREEN", world.node.find_collection(
        "shared").id)
    assert "198.51.100.77" in hit.snippet


def test_japanese_translation_finds_the_object_by_two_and_three_character_words(world: World) -> None:
    malware = sdo("malware", world.uk, [GREEN], name="PlugX loader")
    translation = sdo("language-content", world.uk, [GREEN], object_ref=malware["id"],
                      object_modified=malware["modified"],
                      contents={"ja": {"name": "標的型攻撃メールの添付ファイル",
                                       "description": "攻撃者は政府機関を狙う"},
                                "en": {"name": "Attachment of targeted attack mail"}})
    other = sdo("malware", world.uk, [GREEN], name="攻撃 tool without translation")
    world.add(malware, translation, other)
    for word in ("攻撃", "標的型", "政府機関", "添付ファイル"):
        found = world.search(world.jp, word).hits
        by_id = {hit.id: hit for hit in found}
        assert malware["id"] in by_id, word
        assert translation["id"] in by_id, word
        assert by_id[malware["id"]].via == translation["id"]
        assert word in by_id[malware["id"]].snippet
    assert set(world.ids(world.jp, "攻撃")) == {malware["id"], translation["id"], other["id"]}
    assert set(world.ids(world.jp, "標的型")) == {malware["id"], translation["id"]}
    # A type filter applies to the object a translation is found for.
    assert world.ids(world.jp, "標的型", types=("malware",)) == [malware["id"]]


def test_amber_strict_and_rel_to_are_absent_from_results_and_counts_for_those_not_entitled(world: World) -> None:
    strict = sdo("indicator", world.uk, [AMBER_STRICT], name="Games venue threat kizuna-strict")
    rel_to = build_rel_to_marking(["GBR", "JPN"])
    pact = sdo("indicator", world.uk, [GREEN, rel_to["id"]], name="Pact only kizuna-relto")
    open_ = [sdo("indicator", world.uk, [GREEN], name=f"Open kizuna-open {n}") for n in range(3)]
    world.add(strict, rel_to, pact, *open_)
    # The producer's own organisation sees all of them: the hiding below is policy, not a lost write.
    assert world.search(world.uk_reader, "kizuna").count == 5
    jp = world.search(world.jp, "kizuna")
    assert strict["id"] not in [hit.id for hit in jp.hits] and pact["id"] in [hit.id for hit in jp.hits]
    assert (jp.count, jp.count_exact) == (4, True)
    au = world.search(world.au, "kizuna")
    assert {hit.id for hit in au.hits} == {o["id"] for o in open_}
    assert (au.count, au.count_exact) == (3, True)
    # A search for exactly the hidden words tells nothing: same answer as a word nobody wrote.
    nothing = world.search(world.jp, "nonexistent-word")
    hidden = world.search(world.jp, "kizuna-strict")
    assert (hidden.hits, hidden.count, hidden.count_exact) == (nothing.hits, nothing.count, nothing.count_exact) == (
        [], 0, True)
    assert world.ids(world.au, "kizuna-relto") == []
    assert world.ids(world.jp, "kizuna-relto") == [pact["id"]]


def test_short_words_use_the_pair_index_or_a_scan_and_one_letter_is_refused(world: World) -> None:
    c2 = sdo("infrastructure", world.uk, [GREEN], name="C2 server for the implant")
    kanji = sdo("malware", world.uk, [GREEN], name="Loader", description="政府への攻撃に使われた")
    world.add(c2, kanji)
    assert world.ids(world.jp, "c2") == [c2["id"]]  # two ASCII characters: a scan of the indexed text
    assert world.ids(world.jp, "攻撃") == [kanji["id"]]  # two Japanese characters: the pair index
    assert world.ids(world.jp, "政府 Loader") == [kanji["id"]]
    assert world.ids(world.jp, "撃に") == [kanji["id"]]  # any two letters, not only dictionary words
    assert world.ids(world.jp, "攻撃 C2") == []
    with pytest.raises(BadRequest, match="too short"):
        world.search(world.jp, "攻")


def test_the_newest_rows_window_and_the_index_behind_it_find_every_match_in_order(world: World) -> None:
    store: Any = world.node.store
    if store.search_index.window is not None:  # PostgreSQL looks at its newest 5,000 index rows first; here 3
        store.search_index = type(store.search_index)()
        store.search_index.window = 3
    old = sdo("indicator", world.uk, [GREEN], name="windowed rare-old")
    many = [sdo("indicator", world.uk, [GREEN], name=f"windowed {n}") for n in range(8)]
    world.add(old, *many[:4])
    world.add(*many[4:])
    assert world.ids(world.jp, "rare-old") == [old["id"]]
    found: list[str] = []
    cursor = None
    while True:
        page = world.node.search(world.jp, "windowed", limit=2, cursor=cursor)
        found += [hit.id for hit in page.hits]
        assert (page.count, page.count_exact) == (9, True)
        if page.next is None:
            break
        cursor = page.next
    stored = {o["id"]: n for n, o in enumerate([old, *many])}
    assert sorted(found, key=stored.__getitem__, reverse=True) == found and len(set(found)) == 9


# Only PostgreSQL gathers rare words: SQLite's FTS5 hands back its matches newest first by itself.
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_rare_words_gathered_from_the_trigram_index_give_what_the_walk_gives(world: World) -> None:
    store: Any = world.node.store
    assert store.search_index.window is not None
    store.search_index = type(store.search_index)()
    rare = [sdo("indicator", world.uk, [marking], name=f"gathered needle {n}")
            for n, marking in enumerate([GREEN, AMBER_STRICT, GREEN, AMBER, GREEN])]
    rare.append(sdo("identity", world.uk, [GREEN], name="gathered needle team", identity_class="organization"))
    filler = [sdo("indicator", world.uk, [GREEN], name=f"haystack {n}") for n in range(12)]
    world.add(rare[0], *filler[:6], rare[1], rare[2])
    world.add(*filler[6:], *rare[3:])

    def answers() -> list[tuple[list[str], int, bool]]:
        found = []
        for principal in (world.jp, world.au):
            for text, filters in (("needle", {}), ("gathered needle", {"types": ("identity",)}), ("haystack", {})):
                pages, cursor = [], None
                while True:
                    page = world.node.search(principal, text, SearchFilters(**filters), limit=2, cursor=cursor)
                    pages += [hit.id for hit in page.hits]
                    if page.next is None:
                        break
                    cursor = page.next
                found.append((pages, page.count, page.count_exact))
        return found

    walked = answers()  # the newest 5,000 rows hold everything: no gathering
    assert walked[0][0][:2] == [rare[5]["id"], rare[4]["id"]] and walked[0][1] == 5  # JPCERT/CC: no STRICT
    assert walked[3][1] == 4  # ACSC: GREEN only
    store.search_index.window = 2  # the newest 2 rows, then every older row holding the words at once
    assert answers() == walked
    store.search_index.gather_cap = 1  # more than one older row holds them: not rare, so the walk again
    assert answers() == walked


def test_a_redacted_field_is_not_searchable_by_those_who_cannot_read_it(world: World) -> None:
    indicator = sdo("indicator", world.uk, [GREEN], name="Beacon",
                    description="Seen beaconing to the ministry network",
                    granular_markings=[{"selectors": ["description"], "marking_ref": AMBER}])
    world.add(indicator)
    assert world.ids(world.jp, "beaconing") == [indicator["id"]]  # JPCERT/CC reads AMBER
    assert world.ids(world.au, "beaconing") == []  # ACSC's copy has no description
    assert world.search(world.au, "beaconing ministry").count == 0
    assert world.ids(world.au, "Beacon") == [indicator["id"]]  # the name it does see is searchable
    [hit] = world.search(world.au, "Beacon").hits
    assert "ministry" not in hit.snippet


def test_new_versions_replace_old_text_and_deleted_objects_disappear(world: World) -> None:
    first = sdo("malware", world.uk, [GREEN], name="Oldname implant")
    second = {**first, "modified": "2026-03-02T00:00:00.000Z", "name": "Newname implant"}
    world.add(first)
    assert world.ids(world.jp, "Oldname") == [first["id"]]
    world.add(second)
    assert world.ids(world.jp, "Oldname") == []
    assert world.ids(world.jp, "Newname") == [first["id"]]
    [hit] = world.search(world.jp, "implant").hits
    assert hit.modified.startswith("2026-03-02")
    collection = world.node.find_collection("shared")
    assert world.node.store.delete_versions(collection.pk, first["id"], VersionSelector(all=True), None) == 2
    assert world.search(world.jp, "implant").count == 0
    assert world.search(world.uk_reader, "Newname").hits == []


def test_a_fuller_form_stored_in_place_is_searched_by_its_new_text(world: World) -> None:
    redacted = sdo("indicator", world.uk, [GREEN], name="Relayed copy")
    world.add(redacted)
    fuller = {**redacted, "description": "Full form names the dropper"}
    collection = world.node.find_collection("shared")
    [row] = world.node.store.query_versions(VersionQuery(collection.pk, ids=(redacted["id"],)))
    new = prepare(fuller)
    assert isinstance(new, NewVersion)
    assert world.node.store.replace_form(collection.pk, new, row.version) is not None
    assert world.ids(world.jp, "dropper") == [redacted["id"]]
    assert world.ids(world.jp, "Relayed") == [redacted["id"]]
    assert world.search(world.jp, "Relayed").count == 1


def test_a_reader_who_cannot_see_the_newest_version_finds_the_version_it_sees(world: World) -> None:
    first = sdo("malware", world.uk, [GREEN], name="Greenword implant")
    second = {**first, "modified": "2026-03-02T00:00:00.000Z", "name": "Amberword implant",
              "object_marking_refs": [AMBER]}
    world.add(first, second)
    assert world.ids(world.au, "Greenword") == [first["id"]]  # its latest is the GREEN version
    assert world.ids(world.au, "Amberword") == []
    assert world.ids(world.jp, "Greenword") == []  # its latest is the AMBER version
    assert world.ids(world.jp, "Amberword") == [first["id"]]


def test_filters_combine(world: World) -> None:
    jp_org = world.node.store.get_organisation("JPCERT/CC")
    assert jp_org is not None
    a = sdo("indicator", world.uk, [GREEN], name="combo alpha")
    b = sdo("malware", world.uk, [GREEN], name="combo beta")
    c = sdo("indicator", world.uk, [AMBER], name="combo gamma")
    d = sdo("indicator", jp_org.id, [GREEN], name="combo delta")
    e = sdo("indicator", world.uk, None, name="combo epsilon")
    world.add(a, b, c, d, e)
    f = sdo("indicator", world.uk, [GREEN], name="combo other collection")
    world.add(f, collection="other")
    admin = NODE_ADMIN
    assert set(world.ids(admin, "combo")) == {a["id"], b["id"], c["id"], d["id"], e["id"], f["id"]}
    assert set(world.ids(admin, "combo", collections=("shared",))) == {a["id"], b["id"], c["id"], d["id"], e["id"]}
    assert set(world.ids(admin, "combo", types=("indicator",), tlp=("green",))) == {a["id"], d["id"], f["id"]}
    assert world.ids(admin, "combo", types=("indicator",), tlp=("TLP:GREEN",), producers=("JPCERT/CC",)) == [d["id"]]
    assert set(world.ids(admin, "combo", tlp=("amber", "none"))) == {c["id"], e["id"]}
    assert world.ids(admin, "combo", collections=("other",), types=("malware",)) == []
    added = {hit.id: hit.added for hit in world.search(admin, "combo").hits}
    cut = parse_timestamp(added[f["id"]])
    assert world.ids(admin, "combo", added_from=cut) == [f["id"]]
    assert f["id"] not in world.ids(admin, "combo", added_before=cut)
    # The JPCERT/CC token reads only "shared": "other" is named as absent, not as forbidden.
    with pytest.raises(NotFound):
        world.search(world.jp, "combo", collections=("other",))
    assert f["id"] not in world.ids(world.jp, "combo")


def test_partner_filter_finds_only_what_that_partner_sent(world: World) -> None:
    pulled = sdo("indicator", world.uk, [GREEN], name="relay pulled")
    local = sdo("indicator", world.uk, [GREEN], name="relay local")
    world.add(pulled, local)
    collection = world.node.find_collection("shared")
    [row] = world.node.store.query_versions(VersionQuery(collection.pk, ids=(pulled["id"],)))
    world.node.store.add_provenance([(collection.pk, pulled["id"], row.version, "jp-node", "remote", 1)])
    assert world.ids(NODE_ADMIN, "relay", partner="jp-node") == [pulled["id"]]
    assert world.ids(NODE_ADMIN, "relay", partner="au-node") == []


def test_pages_follow_the_cursor_and_counts_stop_at_the_cap(world: World) -> None:
    objects = [sdo("indicator", world.uk, [GREEN], name=f"paged-{n:02d}") for n in range(7)]
    hidden = [sdo("indicator", world.uk, [AMBER_STRICT], name=f"paged-hidden-{n}") for n in range(4)]
    world.add(*objects[:3], *hidden, *objects[3:])
    seen: list[str] = []
    cursor = None
    counts = []
    while True:
        page = world.node.search(world.jp, "paged", limit=3, cursor=cursor)
        seen += [hit.id for hit in page.hits]
        counts.append((page.count, page.count_exact))
        if page.next is None:
            break
        cursor = page.next
    assert sorted(seen) == sorted(o["id"] for o in objects) and len(seen) == 7
    assert counts == [(7, True)] * 3
    capped = world.node.searcher.search(world.jp, "paged", SearchFilters(), limit=2, count_cap=5)
    assert (capped.count, capped.count_exact) == (5, False)
    with pytest.raises(BadRequest):  # a cursor is bound to its query and principal
        world.node.search(world.uk_reader, "paged", limit=3, cursor=page.next or cursor)


def test_bad_queries_are_refused_with_a_reason(world: World) -> None:
    for text, filters in (("", {}), ("x" * 201, {}), ("word", {"tlp": ("purple",)}),
                          ("word", {"producers": ("No Such Org",)})):
        with pytest.raises(BadRequest):
            world.search(world.jp, text, **filters)
    with pytest.raises(BadRequest):
        world.search(world.jp, "word", limit=0)


def test_search_is_audited_with_what_it_served(world: World) -> None:
    indicator = sdo("indicator", world.uk, [GREEN], name="audited-word")
    world.add(indicator)
    world.search(world.jp, "audited-word")
    record = list(world.node.audit.records())[-1]
    assert (record.kind, record.principal) == ("search", world.jp.key)
    assert "audited-word" in record.body and '"n":1' in record.body.replace(" ", "")


def test_existing_versions_are_indexed_by_the_migration(store_url: str, tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", store_url, org_name="NCSC UK")
    try:
        collection = node.create_collection("Shared", alias="shared")
        indicator = sdo("indicator", node.home_organisation_id or "", [GREEN], name="backfilled-word")
        node.import_objects(collection, [indicator])
        store: Any = node.store
        with store._write() as cur:  # the store as a node before step 11 left it
            cur.execute("DELETE FROM schema_migrations WHERE version = 11")
            cur.execute("DROP TABLE search_text")
            cur.execute("DROP TABLE search_pairs")
        assert node.store.migrate() == node.store.schema_versions()[1]  # back at the newest step
        assert [hit.id for hit in node.search(NODE_ADMIN, "backfilled").hits] == [indicator["id"]]
    finally:
        node.close()


def test_a_field_another_field_holds_whole_is_indexed_once() -> None:
    """An indicator named by its value: the name adds nothing a substring search could match, so it is left out
    of the indexed text (a third less to index for an imported list); equal fields keep their first copy."""
    named = {"type": "indicator", "name": "c2.example.net", "pattern": "[domain-name:value = 'c2.example.net']",
             "description": "C2 seen at the games"}
    assert searchable_text(named) == "[domain-name:value = 'c2.example.net']\nC2 seen at the games"
    assert matches(searchable_text(named), ("c2.example",))
    other = {"type": "malware", "name": "Joker", "description": "Joker", "aliases": ["Joker", "JokerBot"]}
    assert searchable_text(other) == "JokerBot"
    distinct = {"type": "indicator", "name": "beacon", "pattern": "[ipv4-addr:value = '198.51.100.7']"}
    assert searchable_text(distinct) == "beacon\n[ipv4-addr:value = '198.51.100.7']"


def test_listings_name_statement_markings_and_translations_by_what_they_say() -> None:
    """The console titled a search hit "language-content--…" and a marking badge by its id."""
    statement = {"type": "marking-definition", "id": "marking-definition--d81f86b9-975b-4c0b-875e-810c5ad45a4f",
                 "definition_type": "statement", "definition": {"statement": "Copyright (c) Stark Industries 2017."}}
    translation = {"type": "language-content", "id": "language-content--5813acf5-2b1c-4cda-8d88-2b1f0b3e1b1b",
                   "object_ref": "report--1", "contents": {"ja": {"description": "説明", "name": "偽チケット"}}}
    assert display_name(statement) == "Copyright (c) Stark Industries 2017."
    assert display_name(translation) == "偽チケット"
    assert display_name({**statement, "name": "Stark copyright"}) == "Stark copyright"
    assert display_name({"type": "language-content", "contents": {"ja": {"description": "説明"}}}) is None
