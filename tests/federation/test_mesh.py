"""Three real nodes, UK (SQLite), JP (PostgreSQL) and AU (SQLite): a mesh that converges without loops,
and push egress that never echoes and never forwards AMBER+STRICT onward."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import create_pg_database, free_port
from tests.federation.helpers import (
    TLP_AMBER_STRICT,
    TLP_CLEAR,
    FedNode,
    add_partner,
    grant_partner,
    indicator,
    make_fed_node,
    sync,
)

COUNTRIES = {"UK": "GBR", "JP": "JPN", "AU": "AUS"}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FedNode]]:
    base: Path = tmp_path_factory.mktemp("mesh")
    database = create_pg_database("kizuna_fed_mesh")
    nodes = {
        "UK": make_fed_node(base, "UK", "GBR"),
        "JP": make_fed_node(base, "JP", "JPN", database.url),
        "AU": make_fed_node(base, "AU", "AUS"),
    }
    for host in nodes.values():
        for guest in nodes.values():
            if guest is not host:
                grant_partner(host, guest, COUNTRIES[guest.name])
    try:
        for node in nodes.values():
            node.start()
        for node in nodes.values():
            for other in nodes.values():
                if other is not node:
                    add_partner(node, other, "pull", page_size=4)
        yield nodes
    finally:
        for node in nodes.values():
            node.stop()
        database.drop()


def test_pull_mesh_converges_once_per_node_and_goes_quiet(mesh: dict[str, FedNode]) -> None:
    produced: dict[str, set[str]] = {}
    for name, node in mesh.items():
        objects = indicator(node.identity, versions=2, marking=TLP_CLEAR)
        objects += [o for _ in range(3) for o in indicator(node.identity)]
        node.post(objects)
        produced[name] = {o["id"] for o in objects}

    for _ in range(2):
        for node in mesh.values():
            runs = sync(node)["runs"]
            assert all(r["error"] is None and r["quarantined"] == 0 for r in runs), runs

    contents = {name: node.versions() for name, node in mesh.items()}
    assert contents["UK"] == contents["JP"] == contents["AU"]  # same versions, same bytes
    everything = set().union(*produced.values())
    assert everything <= {sid for sid, _ in contents["UK"]}
    for name, node in mesh.items():
        # Every version not made here was stored exactly once, from exactly one partner.
        provenance = node.sql("SELECT stix_id, version, partner FROM fed_provenance")
        keys = [(sid, version) for sid, version, _ in provenance]
        assert len(keys) == len(set(keys))
        assert not {sid for sid, _, _ in provenance} & produced[name]  # nothing came back to its producer
        assert {sid for sid, _, _ in provenance} >= everything - produced[name]
        assert {p for _, _, p in provenance} <= set(mesh) - {name}

    third = [r for node in mesh.values() for r in sync(node)["runs"]]
    assert sum(r["pulled"] for r in third) == 0
    assert all(r["quarantined"] == 0 for r in third)


def test_push_never_echoes_and_never_forwards_amber_strict(mesh: dict[str, FedNode]) -> None:
    uk, jp, au = mesh["UK"], mesh["JP"], mesh["AU"]
    clear = indicator(uk.identity, marking=TLP_CLEAR, name="clear")
    strict = indicator(uk.identity, marking=TLP_AMBER_STRICT, name="strict")
    uk.post(clear + strict)
    assert sync(jp, "UK")["runs"][0]["error"] is None
    on_jp = {sid for sid, _ in jp.versions()}
    # UK gave JP no agreement: CLEAR arrives, AMBER+STRICT does not (JP places the TLP definitions itself).
    assert clear[0]["id"] in on_jp and strict[0]["id"] not in on_jp
    jp_own = indicator(jp.identity, marking=TLP_AMBER_STRICT, name="jp strict")
    jp.post(jp_own)

    # Pushes read as the partner's organisation under its agreement: both release JP's AMBER+STRICT.
    for guest in ("AU", "UK"):
        jp.cli_json("agreements", "set", f"jp-{guest.lower()}", "--partner", f"{guest} national CERT",
                    "--collections", "*", "--producers", "*", "--max-tlp", "amber+strict")
    jp.cli_json("partners", "add", "AU-push", "--url", au.api_root_url, "--map", f"shared={au.collection}:push",
                "--token", au.tokens["JP"], "--org", "AU national CERT", "--agreement", "jp-au")
    jp.cli_json("partners", "add", "UK-push", "--url", uk.api_root_url, "--map", f"shared={uk.collection}:push",
                "--token", uk.tokens["JP"], "--org", "UK national CERT", "--agreement", "jp-uk")
    # The text form names the organisation and the agreement the partner receives under.
    assert "  organisation: AU national CERT; agreement jp-au" in jp.cli("partners", "show", "AU-push").stdout
    to_au = sync(jp, "AU-push")["runs"][0]
    to_uk = sync(jp, "UK-push")["runs"][0]
    assert to_au["error"] is None and to_uk["error"] is None
    # The text form shows the cursors, as --json does: the push mark and the push terms, by name and position.
    shown = jp.cli_json("partners", "show", "AU-push")
    text = jp.cli("partners", "show", "AU-push").stdout
    assert {c["direction"] for c in shown["cursors"]} >= {"push", "push-terms"}
    for cursor in shown["cursors"]:
        assert (f"  cursor {cursor['direction']:<11} shared ~ {au.collection}: {cursor['position']} "
                f"(updated {cursor['updated']})") in text, text

    on_au = {sid for sid, _ in au.versions()}
    assert clear[0]["id"] in on_au  # forwarded onward: TLP:CLEAR may travel
    assert strict[0]["id"] not in on_au  # AMBER+STRICT stops at its recipient
    assert jp_own[0]["id"] in on_au  # JP's own AMBER+STRICT goes to its direct partner
    # Nothing JP received from UK goes back to UK; JP's own objects do.
    uk_ids = {sid for sid, _ in uk.versions()}
    assert jp_own[0]["id"] in uk_ids
    from_uk = jp.sql("SELECT COUNT(*) FROM fed_provenance WHERE partner = 'UK'")[0][0]
    assert from_uk >= 2
    assert to_uk["pushed"] == len(jp.versions()) - from_uk
    # A second push sends nothing: the per-partner high-water mark remembers.
    assert sync(jp, "AU-push")["runs"][0]["pushed"] == 0
    newer = indicator(jp.identity, name="after the mark")
    jp.post(newer)
    again = sync(jp, "AU-push")["runs"][0]
    assert again["pushed"] == 1 and newer[0]["id"] in {sid for sid, _ in au.versions()}

    # The dashboard counts what a push delivered as shared. A push whose partner never answers counts nothing
    # however often it is retried, and is in the audit log all the same, as undelivered.
    def shared_with_au() -> int:
        return sum(e["objects"] for e in jp.cli_json("dashboard")["shared"] if e["partner"] == "AU national CERT")

    delivered = shared_with_au()
    assert delivered >= to_au["pushed"] - 4  # the pushed TLP definitions are no content
    jp.cli_json("partners", "add", "AU-gone", "--url", f"http://127.0.0.1:{free_port()}/main/", "--map",
                f"shared={au.collection}:push", "--token", au.tokens["JP"], "--org", "AU national CERT",
                "--agreement", "jp-au")
    for _ in range(2):
        assert sync(jp, "AU-gone", check=False)["runs"][0]["error"]
    assert shared_with_au() == delivered
    egress = [json.loads(line) for line in jp.cli("audit", "export", "--kind", "egress").stdout.splitlines()]
    undelivered = [r for r in egress if r["principal"] == "partner:AU-gone" and r["body"].get("undelivered")]
    assert len(undelivered) == 2 and all(r["body"]["served"]["n"] > 0 for r in undelivered)
