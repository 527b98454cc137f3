"""The audit chain against direct tampering, and a property test of the HTTP read paths."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kizuna.config import load_config
from kizuna.core.audit import KINDS, seal
from kizuna.stix.timestamps import parse_timestamp
from kizuna.store.base import AuditEntry
from kizuna.store.sqlite.store import path_from_url
from tests.policy_node.conftest import (
    AMBER,
    AMBER_STRICT,
    CLEAR,
    GREEN,
    RED,
    World,
    build_rel_to_marking,
    cli_json,
    run_cli,
    sdo,
)

# -- tampering ------------------------------------------------------------------------------------


def _execute(world: World, *statements: tuple[str, tuple[Any, ...]]) -> None:
    url = load_config(world.node.data_dir).store_url
    if url.startswith("sqlite"):
        with sqlite3.connect(path_from_url(url)) as conn:
            for sql, params in statements:
                conn.execute(sql, params)
        return
    import psycopg

    with psycopg.connect(url, autocommit=False) as conn:
        for sql, params in statements:
            conn.execute(sql.replace("?", "%s"), params)


def _rows(world: World) -> list[tuple[Any, ...]]:
    url = load_config(world.node.data_dir).store_url
    sql = "SELECT seq, at, kind, principal, body, prev_hash, hash FROM audit_log ORDER BY seq"
    if url.startswith("sqlite"):
        with sqlite3.connect(path_from_url(url)) as conn:
            return list(conn.execute(sql))
    import psycopg

    with psycopg.connect(url) as conn:
        return list(conn.execute(sql))


def _verify(world: World) -> tuple[int, dict[str, Any]]:
    code, out = run_cli(world.node.data_dir, "audit", "verify", "--json", check=False)
    return code, json.loads(out)


def _restore(world: World, rows: list[tuple[Any, ...]]) -> None:
    _execute(world, ("DELETE FROM audit_log", ()), *[
        ("INSERT INTO audit_log (seq, at, kind, principal, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
         tuple(row)) for row in rows
    ])


def _edit(rows: list[tuple[Any, ...]], seq: int) -> tuple[str, tuple[Any, ...]]:
    return ("UPDATE audit_log SET body = ? WHERE seq = ?", ('{"forged":true}', seq))


def _delete(rows: list[tuple[Any, ...]], seq: int) -> tuple[str, tuple[Any, ...]]:
    return ("DELETE FROM audit_log WHERE seq = ?", (seq,))


def _swap(rows: list[tuple[Any, ...]], seq: int) -> tuple[str, tuple[Any, ...]]:
    # Swap the contents of records seq and seq+1, keeping their positions.
    a, b = rows[seq - 1], rows[seq]
    return ("UPDATE audit_log SET at = ?, kind = ?, principal = ?, body = ?, prev_hash = ?, hash = ? "
            "WHERE seq = ?", (*b[1:], a[0]))


@pytest.mark.parametrize("tamper", [_edit, _delete, _swap], ids=["edit", "delete", "swap"])
def test_audit_verify_names_the_tampered_record(
    world: World, tamper: Callable[[list[tuple[Any, ...]], int], tuple[str, tuple[Any, ...]]],
) -> None:
    world.node.post([sdo("indicator", world.uk, [GREEN])])
    world.objects("reader")
    code, intact = _verify(world)
    assert code == 0 and intact["ok"] and intact["records"] >= 4
    rows = _rows(world)
    target = len(rows) // 2
    _execute(world, tamper(rows, target))
    try:
        code, broken = _verify(world)
        assert code == 1 and not broken["ok"]
        assert broken["seq"] == target and f"record {target}" in broken["problem"]
        assert broken["error"]["code"] == "audit-broken"  # a failure as every command reports one
        text_code, _ = run_cli(world.node.data_dir, "audit", "verify", check=False)
        assert text_code == 1
    finally:
        _restore(world, rows)
    assert _verify(world)[0] == 0


def test_audit_export_writes_the_chain_as_json_lines(world: World) -> None:
    world.node.post([sdo("indicator", world.uk, [GREEN])])
    assert world.objects("reader")
    out = world.node.data_dir.parent / "audit.jsonl"
    run_cli(world.node.data_dir, "audit", "export", "-o", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, len(lines) + 1))
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(lines, lines[1:], strict=False))
    # Each exported line can be checked against its hash without the node.
    for line in lines:
        entry = AuditEntry(parse_timestamp(line["at"]), line["kind"], line["principal"],
                           orjson.dumps(line["body"]).decode())
        assert seal(line["seq"], line["prev_hash"], entry) == line["hash"], line["seq"]
    # Egress pairs are stored compactly and exported spelt out.
    egress = [line for line in lines if line["kind"] == "egress" and line["body"]["served"]["n"]]
    assert egress and all(len(line["served"]) == line["body"]["served"]["n"] for line in egress)
    assert all(stix_id.count("--") == 1 and isinstance(version, int)
               for line in egress for stix_id, version in line["served"])
    # Every kind the node wrote is a known kind, and --kind selects exactly its records.
    assert {line["kind"] for line in lines} <= KINDS
    only = world.node.data_dir.parent / "egress.jsonl"
    run_cli(world.node.data_dir, "audit", "export", "-o", str(only), "--kind", "egress")
    assert [json.loads(line)["seq"] for line in only.read_text().splitlines()] == [
        line["seq"] for line in lines if line["kind"] == "egress"]


def test_the_audit_log_refuses_a_kind_it_does_not_know(world: World) -> None:
    before = world.core.store.audit_head()
    with pytest.raises(ValueError, match="not one of core.audit.KINDS"):
        world.core.audit.record("egres", None, {})
    assert world.core.store.audit_head() == before


# -- nothing forbidden is served --------------------------------------------------------------------

REL_GBR_JPN = build_rel_to_marking(["GBR", "JPN"])
REL_GBR = build_rel_to_marking(["GBR"])
MARKING_SETS = [[], [CLEAR], [GREEN], [AMBER], [AMBER_STRICT], [RED], [GREEN, REL_GBR_JPN["id"]],
                [AMBER, REL_GBR["id"]], ["marking-definition--00000000-0000-4000-8000-000000000000"]]


def _forbidden(token: str, refs: list[str]) -> bool:
    """The oracle, from docs/policy.md, for this world's tokens (JP: agreement up to AMBER; AU: GREEN)."""
    level_cap = {"reader": AMBER, "au": GREEN}[token]
    order = [CLEAR, GREEN, AMBER, AMBER_STRICT, RED]
    country = {"reader": "JPN", "au": "AUS"}[token]
    for ref in refs:
        if ref in order and order.index(ref) > order.index(level_cap):
            return True
        if ref == REL_GBR_JPN["id"] and country not in ("GBR", "JPN"):
            return True
        if ref == REL_GBR["id"]:
            return True
        if ref not in order and ref not in (REL_GBR_JPN["id"], REL_GBR["id"]):
            return True  # unknown marking: default deny
    return False


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    choices=st.lists(st.tuples(st.integers(0, len(MARKING_SETS) - 1), st.integers(0, len(MARKING_SETS) - 1),
                               st.booleans()), min_size=1, max_size=6),
    limit=st.integers(1, 4),
)
def test_no_read_path_serves_anything_forbidden(world: World, choices: list[tuple[int, int, bool]],
                                                limit: int) -> None:
    objects: list[dict[str, Any]] = []
    for object_set, granular_set, linked in choices:
        extra: dict[str, Any] = {}
        if MARKING_SETS[granular_set]:
            extra = {"description": "granular secret",
                     "granular_markings": [{"selectors": ["description"], "marking_ref": ref}
                                           for ref in MARKING_SETS[granular_set]]}
        obj = sdo("indicator", world.uk, MARKING_SETS[object_set] or None, **extra)
        objects.append(obj)
        if linked and len(objects) > 1:
            rel = sdo("relationship", world.uk, [CLEAR], relationship_type="related-to",
                      source_ref=objects[-2]["id"], target_ref=obj["id"])
            objects.append(rel)
    world.node.post([REL_GBR_JPN, REL_GBR, *objects])
    by_id = {o["id"]: o for o in objects}
    ids = ",".join(by_id)
    for token in ("reader", "au"):
        def allowed(obj: dict[str, Any], token: str = token) -> bool:
            return not _forbidden(token, obj.get("object_marking_refs", []))

        served = world.objects(token, **{"match[id]": ids, "limit": str(limit)})
        for out in served:
            original = by_id[out["id"]]
            assert allowed(original), (token, original)
            if out["type"] == "relationship":
                assert allowed(by_id[out["source_ref"]]) and allowed(by_id[out["target_ref"]])
            for entry in original.get("granular_markings", []):
                if _forbidden(token, [entry["marking_ref"], *original.get("object_marking_refs", [])]):
                    assert "description" not in out
        session = world.node.session(token)
        manifest = session.get(world.node.collection_url() + "manifest/", params={"match[id]": ids}).json()
        assert all(allowed(by_id[r["id"]]) for r in manifest.get("objects", []))
        visible = {o["id"] for o in served}
        for obj in objects:
            response = session.get(world.node.collection_url() + f"objects/{obj['id']}/versions/")
            assert (response.status_code == 200) == (obj["id"] in visible), (token, obj)


def test_policy_commands_change_what_is_served(world: World) -> None:
    green = sdo("indicator", world.uk, [GREEN])
    world.node.post([green])
    # GREEN via community: an organisation with no agreement sees GREEN only once it shares a community.
    data = world.node.data_dir
    cli_json(data, "orgs", "create", "CERT-EE", "--country", "EST")
    token = cli_json(data, "tokens", "create", "--org", "CERT-EE", "--read", "shared")["token"]
    world.node.tokens["ee"] = token
    assert world.objects("ee", **{"match[id]": green["id"]}) == []
    cli_json(data, "policy", "communities", "first-eu,")
    # A misspelt community gives nothing, and now says so (it was set without a word).
    typo = cli_json(data, "policy", "org", "CERT-EE", "--community", "frist-eu")
    assert typo["organisation_name"] == "CERT-EE" and typo["notes"] == [
        "this node does not share TLP:GREEN with community 'frist-eu' (it shares with 'first-eu': kizuna policy "
        "communities), so CERT-EE receives no TLP:GREEN through it"]
    assert world.objects("ee", **{"match[id]": green["id"]}) == []
    assert cli_json(data, "policy", "org", "CERT-EE", "--community", "first-eu")["notes"] == []
    assert [o["id"] for o in world.objects("ee", **{"match[id]": green["id"]})] == [green["id"]]
    # Looking changes nothing (the bare command used to empty the list); --none empties it.
    assert cli_json(data, "policy", "communities")["shared_communities"] == ["first-eu"]
    assert [o["id"] for o in world.objects("ee", **{"match[id]": green["id"]})] == [green["id"]]
    assert cli_json(data, "policy", "communities", "--none")["shared_communities"] == []
    assert world.objects("ee", **{"match[id]": green["id"]}) == []
    cli_json(data, "policy", "communities", "first-eu")
    history = cli_json(data, "agreements", "show", "uk-au")["versions"]
    cli_json(data, "agreements", "set", "uk-au", "--max-tlp", "clear")
    assert cli_json(data, "agreements", "show", "uk-au")["versions"][-1]["version"] == len(history) + 1
    assert world.objects("au", **{"match[id]": green["id"]}) == []
    cli_json(data, "agreements", "set", "uk-au", "--max-tlp", "green")
    assert [o["id"] for o in world.objects("au", **{"match[id]": green["id"]})] == [green["id"]]


def test_a_head_request_is_audited_as_serving_no_object(world: World) -> None:
    """HEAD answers with the headers of a page and no body: its record said the page's objects had left."""
    world.node.post([sdo("indicator", world.uk, [GREEN])])
    url = world.node.collection_url() + "objects/"
    head = world.node.session("reader").head(url)
    assert head.status_code == 200 and head.content == b""
    get = world.node.session("reader").get(url)
    assert get.status_code == 200 and get.json()["objects"]
    records = [r for r in world.core.audit.records() if r.kind == "egress"][-2:]
    bodies = [orjson.loads(r.body) for r in records]
    assert (bodies[0]["method"], bodies[0]["served"]["n"]) == ("HEAD", 0)
    assert "method" not in bodies[1] and bodies[1]["served"]["n"] == len(get.json()["objects"])
