"""Named feeds over HTTP (`kizuna feeds create`, `GET /feeds/<name>.<ext>`) against a real `kizuna serve`
on SQLite and PostgreSQL: each caller's own view, validators that make an unchanged list a 304, lists
that follow revocation and validity windows, and errors that say nothing about feeds one may not use."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import dns.zone
import pytest
import requests

from tests.conftest import Node, kizuna, kizuna_json

TLP_CLEAR = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
TLP_AMBER_STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
TLP_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
TLP_RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ip_indicator(ip: str, marking: str = TLP_CLEAR, **extra: Any) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}",
            "created": "2026-01-05T00:00:00.000Z", "modified": "2026-01-05T00:00:00.000Z", "name": ip,
            "pattern": f"[ipv4-addr:value = '{ip}']", "pattern_type": "stix",
            "valid_from": "2026-01-05T00:00:00Z", "object_marking_refs": [marking], **extra}


def get(node: Node, path: str, token: str | None = "reader", **headers: str) -> requests.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {node.tokens[token]}"
    return requests.get(node.base + path, headers=headers, timeout=60)


def body_lines(text: str) -> list[str]:
    """A list's entries: without the comment that says when it was written."""
    return [line for line in text.splitlines() if not line.startswith("#")]


@pytest.fixture(scope="module")
def fed(node: Node) -> Node:
    node.post([ip_indicator("203.0.113.10"), ip_indicator("203.0.113.20", TLP_AMBER_STRICT)])
    kizuna_json(node.data_dir, "feeds", "create", "fw", "--format", "txt", "--collection", "shared")
    kizuna_json(node.data_dir, "feeds", "create", "dns", "--format", "rpz", "--collection", "shared",
                "--rpz-origin", "rpz.example.test")
    return node


def test_each_caller_receives_its_own_view(fed: Node) -> None:
    own = get(fed, "/feeds/fw.txt", "writer")
    partner = get(fed, "/feeds/fw.txt", "reader")
    assert own.status_code == partner.status_code == 200
    assert own.headers["content-type"].startswith("text/plain")
    assert {"203.0.113.10", "203.0.113.20"} <= set(body_lines(own.text))
    assert "203.0.113.10" in body_lines(partner.text)
    assert "203.0.113.20" not in partner.text  # AMBER+STRICT stays with its producer's organisation
    assert own.headers["etag"] != partner.headers["etag"]


def test_a_feed_is_what_export_writes_for_the_same_token(fed: Node, tmp_path: Path) -> None:
    token_id = fed.tokens["reader"].split("_")[1]
    out = tmp_path / "fw.txt"
    kizuna(fed.data_dir, "export", "--collection", "shared", "--format", "txt", "--as-token-id", token_id,
           "-o", str(out))
    assert body_lines(get(fed, "/feeds/fw.txt").text) == body_lines(out.read_text())


def test_a_feed_one_may_not_read_is_indistinguishable_from_none(fed: Node) -> None:
    hidden = get(fed, "/feeds/fw.txt", "outsider")  # a token of another collection
    absent = get(fed, "/feeds/never-defined.txt", "outsider")
    wrong_extension = get(fed, "/feeds/fw.rpz", "reader")
    no_extension = get(fed, "/feeds/fw", "reader")
    no_name = get(fed, "/feeds/", "reader")  # it was taken for an API root called "feeds"
    for response in (hidden, absent, wrong_extension, no_extension, no_name):
        assert response.status_code == 404
        assert response.json() == {"title": "Not found", "description": "no such feed", "http_status": "404"}
    for response in (get(fed, "/feeds/fw.txt", None), get(fed, "/feeds/", None),
                     requests.get(fed.base + "/feeds/fw.txt", headers={"Authorization": "Bearer kz_x_y"}, timeout=30)):
        assert response.status_code == 401
        assert response.json()["http_status"] == "401"


def test_an_unchanged_list_is_304_and_a_new_indicator_changes_it(fed: Node) -> None:
    first = get(fed, "/feeds/fw.txt")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"') and first.headers["cache-control"] == "private, no-cache"
    # RFC 9110 8.8.2.1: an origin server MUST NOT send a Last-Modified date later than its Date.
    assert parsedate_to_datetime(modified) <= parsedate_to_datetime(first.headers["date"])
    for headers in ({"If-None-Match": etag}, {"If-None-Match": f'W/{etag}'},
                    {"If-None-Match": f'"other", {etag}'}, {"If-Modified-Since": modified}):
        again = get(fed, "/feeds/fw.txt", **headers)
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag), headers
    assert get(fed, "/feeds/fw.txt", **{"If-None-Match": '"something-else"'}).status_code == 200
    head = requests.head(fed.base + "/feeds/fw.txt", headers={"Authorization": f"Bearer {fed.tokens['reader']}"},
                         timeout=30)
    assert (head.status_code, head.content, head.headers["etag"]) == (200, b"", etag)

    fed.post([ip_indicator("198.51.100.7")])
    changed = get(fed, "/feeds/fw.txt", **{"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert "198.51.100.7" in body_lines(changed.text)
    assert get(fed, "/feeds/fw.txt", **{"If-None-Match": changed.headers["etag"]}).status_code == 304


def test_an_if_modified_since_in_the_future_is_ignored(fed: Node) -> None:
    # RFC 9110 13.1.3: a date later than the server's clock is invalid, so the field is ignored and the list sent.
    first = get(fed, "/feeds/fw.txt")
    future = "Fri, 01 Jan 2099 00:00:00 GMT"
    again = get(fed, "/feeds/fw.txt", **{"If-Modified-Since": future})
    assert (again.status_code, again.content) == (200, first.content)
    # If-None-Match still decides when both are sent.
    both = get(fed, "/feeds/fw.txt", **{"If-Modified-Since": future, "If-None-Match": first.headers["etag"]})
    assert both.status_code == 304


def test_revoked_and_expired_indicators_leave_and_a_future_one_enters_on_time(fed: Node) -> None:
    now = datetime.now(UTC)
    revoked = ip_indicator("192.0.2.50")
    expired = ip_indicator("192.0.2.51", valid_until=_stamp(now - timedelta(days=1)))
    soon = ip_indicator("192.0.2.52", valid_from=_stamp(now + timedelta(seconds=3)))
    fed.post([revoked, expired, soon])
    before = get(fed, "/feeds/fw.txt")
    assert "192.0.2.50" in body_lines(before.text)
    assert not {"192.0.2.51", "192.0.2.52"} & set(body_lines(before.text))
    fed.post([{**revoked, "modified": "2026-02-01T00:00:00.000Z", "revoked": True}])
    after = get(fed, "/feeds/fw.txt")
    assert "192.0.2.50" not in body_lines(after.text)
    # Nothing is stored when valid_from comes: the validator must still expire with the clock.
    etag, deadline = after.headers["etag"], time.monotonic() + 60
    while time.monotonic() < deadline:
        polled = get(fed, "/feeds/fw.txt", **{"If-None-Match": etag})
        if polled.status_code == 200:
            assert "192.0.2.52" in body_lines(polled.text)
            break
        time.sleep(0.2)  # a device polling; bounded by the deadline
    else:
        pytest.fail("the indicator whose valid_from passed never entered the feed")


def test_an_rpz_feed_parses_as_a_zone_and_keeps_its_etag_across_builds(fed: Node) -> None:
    fed.post([{**ip_indicator("x"), "pattern": "[domain-name:value = 'feed-zone.example.net']"}])
    first = get(fed, "/feeds/dns.rpz")
    assert first.headers["content-type"].startswith("text/dns")
    zone = dns.zone.from_text(first.text, origin="rpz.example.test", relativize=False, check_origin=False)
    assert any(str(name).startswith("feed-zone.example.net.") for name in zone.nodes)
    # A fresh build (another caller's view of the same objects) has a new SOA serial but the same list.
    kizuna_json(fed.data_dir, "feeds", "create", "dns2", "--format", "rpz", "--collection", "shared",
                "--rpz-origin", "rpz.example.test")
    second = get(fed, "/feeds/dns2.rpz")
    assert second.headers["etag"] == first.headers["etag"]


def test_a_warninglisted_value_needs_the_feeds_own_switch(fed: Node) -> None:
    flagged = ip_indicator("8.8.8.8", x_kizuna_warninglists=["List of known IPv4 public DNS resolvers"])
    fed.post([flagged])
    kizuna_json(fed.data_dir, "feeds", "create", "fw-all", "--format", "txt", "--collection", "shared",
                "--include-warninglisted")
    assert "8.8.8.8" not in body_lines(get(fed, "/feeds/fw.txt").text)
    assert "8.8.8.8" in body_lines(get(fed, "/feeds/fw-all.txt").text)


def test_a_served_feed_is_audited_as_egress_and_a_304_sends_nothing(fed: Node, tmp_path: Path) -> None:
    kizuna_json(fed.data_dir, "feeds", "create", "audited", "--format", "csv", "--collection", "shared")
    token_id = fed.tokens["reader"].split("_")[1]

    def egress() -> list[dict[str, Any]]:
        out = tmp_path / f"audit-{uuid.uuid4()}.jsonl"
        kizuna(fed.data_dir, "audit", "export", "--kind", "egress", "-o", str(out))
        return [r for r in map(json.loads, out.read_text().splitlines()) if r["principal"] == token_id]

    before = len(egress())
    served = get(fed, "/feeds/audited.csv")
    assert served.headers["content-type"].startswith("text/csv")
    records = egress()
    assert len(records) > before
    assert any(pair[0].startswith("indicator--") for r in records[before:] for pair in r.get("served", []))
    assert get(fed, "/feeds/audited.csv", **{"If-None-Match": served.headers["etag"]}).status_code == 304
    assert len(egress()) == len(records)


def test_a_ceilinged_feed_leaves_out_what_a_granular_marking_above_the_ceiling_covers(
        fed: Node, tmp_path: Path) -> None:
    """A feed's ceiling was tested against the indicator's object markings alone: a TLP:GREEN indicator's
    AMBER+STRICT description went out in a GREEN-ceilinged CSV feed, and one whose pattern is AMBER+STRICT
    went out whole."""
    green = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
    part = ip_indicator("198.51.100.31", green, description="Named by a partner's own sensor",
                        granular_markings=[{"selectors": ["description"], "marking_ref": TLP_AMBER_STRICT}])
    value = ip_indicator("198.51.100.32", green,
                         granular_markings=[{"selectors": ["pattern", "name"], "marking_ref": TLP_AMBER_STRICT}])
    kizuna_json(fed.data_dir, "collections", "create", "--title", "Ceilinged", "--alias", "ceilinged")
    bundle = tmp_path / "ceilinged.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [part, value]}))
    kizuna_json(fed.data_dir, "import", str(bundle), "--collection", "ceilinged")
    token = kizuna_json(fed.data_dir, "tokens", "create", "--org", "NCSC UK", "--read", "ceilinged")["token"]
    for fmt, ext in (("csv", "csv"), ("txt", "txt")):
        kizuna_json(fed.data_dir, "feeds", "create", f"ceilinged-{fmt}", "--format", fmt, "--collection", "ceilinged",
                    "--tlp-ceiling", "green")
        served = requests.get(f"{fed.base}/feeds/ceilinged-{fmt}.{ext}", headers={"Authorization": f"Bearer {token}"},
                              timeout=60)
        assert served.status_code == 200, served.text
        assert "198.51.100.31" in served.text and "198.51.100.32" not in served.text
        assert part["description"] not in served.text


def test_a_feeds_egress_labels_a_version_by_its_objects_markings_not_its_granular_parts(
        fed: Node, tmp_path: Path) -> None:
    """A GREEN indicator whose name is RED (a granular marking) reaches a GREEN partner without its name: its
    egress record says TLP:GREEN, as a TAXII read's does, not TLP:RED, which never left. So too for the node's
    own organisation, which receives it whole (a blocklist then serves it from its stored facts). In the
    collection "other", which no other test here reads, and for a partner organisation of its own."""
    kizuna_json(fed.data_dir, "policy", "communities", "pact")
    kizuna_json(fed.data_dir, "orgs", "create", "Green Partner", "--country", "FRA")
    kizuna_json(fed.data_dir, "policy", "org", "Green Partner", "--community", "pact")
    partner = kizuna_json(fed.data_dir, "tokens", "create", "--org", "Green Partner", "--read", fed.other_collection)
    partly_red = [ip_indicator(f"192.0.2.{i}", TLP_GREEN, description="seen at the victim's site",
                               granular_markings=[{"marking_ref": TLP_RED, "selectors": ["name", "description"]}])
                  for i in (80, 81)]
    fed.post([*partly_red, ip_indicator("192.0.2.82", TLP_GREEN)], collection=fed.other_collection)
    for fmt in ("csv", "txt"):  # a feed read through TAXII's page reader, and one read from the feed facts
        kizuna_json(fed.data_dir, "feeds", "create", f"granular-{fmt}", "--format", fmt,
                    "--collection", fed.other_collection)
        for secret in (partner["token"], fed.tokens["writer"]):
            served = requests.get(f"{fed.base}/feeds/granular-{fmt}.{fmt}", timeout=60,
                                  headers={"Authorization": f"Bearer {secret}"})
            assert served.status_code == 200 and "192.0.2.80" in served.text
            assert secret != partner["token"] or "victim" not in served.text  # the RED part stays
    out = tmp_path / "egress.jsonl"
    kizuna(fed.data_dir, "audit", "export", "--kind", "egress", "-o", str(out))
    for secret in (partner["token"], fed.tokens["writer"]):
        token_id = secret.split("_")[1]
        counts: dict[str, int] = {}
        for record in map(json.loads, out.read_text().splitlines()):
            if record["principal"] == token_id and record["body"]["collection"] == fed.other_collection:
                for label, count in record["body"].get("tlp", {}).items():
                    counts[label] = counts.get(label, 0) + count
        assert counts == {"TLP:GREEN": 6}, (secret == partner["token"], counts)


def test_feeds_are_listed_by_name_and_removed(fed: Node) -> None:
    listed = kizuna_json(fed.data_dir, "feeds", "list")["feeds"]
    row = next(f for f in listed if f["name"] == "fw")
    assert (row["path"], row["collection_name"], row["type"]) == ("/feeds/fw.txt", "shared", "ip")
    assert "fw" in kizuna(fed.data_dir, "feeds", "list").stdout
    kizuna_json(fed.data_dir, "feeds", "create", "gone", "--format", "zeek", "--collection", "shared")
    assert get(fed, "/feeds/gone.zeek").status_code == 200
    kizuna_json(fed.data_dir, "feeds", "remove", "gone")
    assert get(fed, "/feeds/gone.zeek").status_code == 404
    again = kizuna(fed.data_dir, "feeds", "remove", "gone", check=False)
    assert again.returncode != 0 and again.stderr.startswith("kizuna feeds remove: no feed 'gone'")


@pytest.mark.parametrize("args,message", [
    (("feeds", "create", "Bad.Name", "--format", "txt", "--collection", "shared"), "feed name"),
    (("feeds", "create", "fw", "--format", "txt", "--collection", "shared"), "already exists"),
    (("feeds", "create", "z", "--format", "zeek", "--collection", "shared", "--type", "ip"), "txt feeds only"),
    (("feeds", "create", "z", "--format", "txt", "--collection", "no-such-collection"), "no collection"),
    (("feeds", "show", "no-such-feed"), "no feed"),
])
def test_impossible_definitions_are_refused_in_one_line(fed: Node, args: tuple[str, ...], message: str) -> None:
    result = kizuna(fed.data_dir, *args, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr
