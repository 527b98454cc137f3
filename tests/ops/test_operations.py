"""Mass-event operations end to end: a real node process, partners writing over TAXII with the
tokens `kizuna ops create` printed, and the `kizuna ops` commands reading the result."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import stix2
from taxii2client.v21 import Collection

from kizuna.ops.incidents import INCIDENT_CORE
from kizuna.ops.lookalikes import MAX_LOOKALIKES, lookalikes_of
from kizuna.policy.tlp import TlpLevel, oasis_id
from tests.conftest import (
    TAXII,
    ServerProcess,
    create_pg_database,
    kizuna,
    kizuna_json,
    run_on_a_terminal,
    start_server,
)

AMBER, GREEN, RED = (oasis_id(level) for level in (TlpLevel.AMBER, TlpLevel.GREEN, TlpLevel.RED))
TODAY = dt.datetime.now(dt.UTC).date()
JPCERT, SOC = "JPCERT/CC", "Tokyo 2020 SOC"


@dataclass
class World:
    data: Path
    server: ServerProcess
    ids: dict[str, str]  # organisation name -> identity id

    def op(self, name: str, *extra: str) -> dict[str, Any]:
        return kizuna_json(self.data, "ops", "create", name, "--from", str(TODAY - dt.timedelta(days=1)),
                           "--to", str(TODAY + dt.timedelta(days=10)), "--partner", JPCERT, "--partner", SOC,
                           *extra)

    def post(self, token: str, collection: str, objects: list[dict[str, Any]]) -> requests.Response:
        return requests.post(f"{self.server.base}/main/collections/{collection}/objects/",
                             data=json.dumps({"objects": objects}),
                             headers={"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {token}"},
                             timeout=30)

    def get(self, token: str, collection: str) -> requests.Response:
        return requests.get(f"{self.server.base}/main/collections/{collection}/objects/",
                            headers={"Accept": TAXII, "Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("ops") / "node"
    kizuna_json(data, "init", "--org-name", "NCSC UK", "--country", "GBR")
    ids = {name: kizuna_json(data, "orgs", "create", name, "--country", "JPN")["id"] for name in (JPCERT, SOC)}
    server = start_server(data, sync=False)
    try:
        yield World(data, server, ids)
    finally:
        server.stop()


def indicator(producer: str, pattern: str, marking: str = AMBER, name: str = "x") -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}", "created": now,
            "modified": now, "name": name, "pattern": pattern, "pattern_type": "stix", "valid_from": now,
            "created_by_ref": producer, "object_marking_refs": [marking]}


def tokens_of(created: dict[str, Any]) -> dict[str, str]:
    return {t["org"]: t["token"] for t in created["tokens"]}


def test_create_gives_each_partner_a_token_for_exactly_the_operation_ending_after_the_grace(world: World) -> None:
    created = world.op("Games Setup", "--grace-days", "3")
    assert sorted(t["org"] for t in created["tokens"]) == [JPCERT, SOC]
    expected_end = dt.datetime.combine(TODAY + dt.timedelta(days=14), dt.time(), dt.UTC)  # day after --to, + 3
    listed = {t["id"]: t for t in kizuna_json(world.data, "tokens", "list")["tokens"]}
    for partner in created["operation"]["partners"]:
        assert listed[partner["token"]]["expires"].startswith(expected_end.strftime("%Y-%m-%dT%H:%M:%S"))
    titles = {c["title"] for c in created["operation"]["collections"].values()}
    assert titles == {"Games Setup intel", "Games Setup incidents", "Games Setup watchlist"}
    seen = requests.get(f"{world.server.base}/main/collections/", timeout=30, headers={
        "Accept": TAXII, "Authorization": f"Bearer {tokens_of(created)[JPCERT]}"}).json()["collections"]
    assert {c["title"] for c in seen} == titles
    shown = kizuna_json(world.data, "ops", "show", "games-setup")
    assert [p["token_state"] for p in shown["partners"]] == ["active", "active"]
    # In text, times read to the second as `tokens list` shows them (not the stored microseconds).
    end = expected_end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"tokens until {end}\n" in kizuna(world.data, "ops", "show", "games-setup").stdout
    assert "games-setup" in [o["slug"] for o in kizuna_json(world.data, "ops", "list")["operations"]]
    # An operation whose tokens would already have expired is refused in one line.
    late = kizuna(world.data, "ops", "create", "Old Cup", "--from", "2019-09-20", "--to", "2019-11-02",
                  "--partner", JPCERT, check=False)
    assert late.returncode != 0 and late.stderr.startswith("kizuna ops create:") and "never work" in late.stderr


def test_partner_objects_about_protected_assets_raise_alerts_by_rule(world: World) -> None:
    created = world.op("Games Alerts")
    first = kizuna_json(world.data, "ops", "assets", "add", "games-alerts", "--domain", "tokyo2020.jp",
                        "--cidr", "198.51.100.0/24", "--url", "https://tickets.example.org/buy",
                        "--identity", "Jane Minister")
    assets = kizuna_json(world.data, "ops", "assets", "list", "games-alerts")["assets"]
    assert len(first["added"]) == 4 and first["already_protected"] == []
    # The same domain again (in another case) is one asset, already protected: not counted as added.
    again = kizuna(world.data, "ops", "assets", "add", "games-alerts", "--domain", "Tokyo2020.JP",
                   "--identity", "jane minister", "--identity", "Jane Minister").stdout
    assert again.startswith("0 assets added to games-alerts-watchlist (2 already protected: tokyo2020.jp, "
                            "Jane Minister);"), again
    assert kizuna_json(world.data, "ops", "assets", "list", "games-alerts")["assets"] == assets
    nothing = kizuna(world.data, "ops", "assets", "add", "games-alerts", check=False)  # a usage error: exit 2
    assert (nothing.returncode, nothing.stderr) == (2, "kizuna ops assets add: give at least one --domain, --cidr, "
                                                       "--url or --identity\n")
    # A range wider than /8 (IPv4) or /16 (IPv6) would make every address partners mention an alert: refused,
    # and nothing of the same command is added.
    for cidr, widest in (("0.0.0.0/0", "/8 for IPv4"), ("10.0.0.0/7", "/8 for IPv4"), ("::/0", "/16 for IPv6")):
        wide = kizuna(world.data, "ops", "assets", "add", "games-alerts", "--domain", "wide.example.org",
                      "--cidr", cidr, check=False)
        assert wide.returncode == 1 and wide.stderr.startswith(f"kizuna ops assets add: '{cidr}' is /") \
            and f"at most {widest}" in wide.stderr and len(wide.stderr.splitlines()) == 1, wide.stderr
    assert kizuna_json(world.data, "ops", "assets", "list", "games-alerts")["assets"] == assets
    assert len(kizuna_json(world.data, "ops", "assets", "add", "games-alerts", "--cidr", "10.0.0.0/8",
                           "--cidr", "2001:db8::/16")["added"]) == 2
    assets = kizuna_json(world.data, "ops", "assets", "list", "games-alerts")["assets"]
    vip = next(a["id"] for a in assets if a["kind"] == "identity")
    lookalike = sorted(d for d, fuzzer in lookalikes_of("tokyo2020.jp").items() if fuzzer == "homoglyph")[0]
    jp, soc = tokens_of(created)[JPCERT], tokens_of(created)[SOC]
    intel, incidents = "games-alerts-intel", "games-alerts-incidents"
    sub = indicator(world.ids[JPCERT], "[domain-name:value = 'login.tokyo2020.jp']", name="sub")
    ip = indicator(world.ids[JPCERT], "[ipv4-addr:value = '198.51.100.23']", name="ip")
    phish = indicator(world.ids[SOC], f"[url:value = 'http://{lookalike}/pay']", name="phish")
    unrelated = indicator(world.ids[SOC], "[domain-name:value = 'example.com']", name="unrelated")
    assert world.post(jp, intel, [sub, ip]).status_code == 202
    assert world.post(soc, intel, [phish, unrelated]).status_code == 202
    now = phish["created"]
    sighting = {"type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}", "created": now,
                "modified": now, "sighting_of_ref": phish["id"], "created_by_ref": world.ids[JPCERT],
                "object_marking_refs": [AMBER]}
    report = {"type": "report", "spec_version": "2.1", "id": f"report--{uuid.uuid4()}", "created": now,
              "modified": now, "name": "threat to VIP", "published": now, "object_refs": [vip],
              "created_by_ref": world.ids[SOC], "object_marking_refs": [AMBER]}
    assert world.post(jp, incidents, [sighting]).status_code == 202
    assert world.post(soc, incidents, [report]).status_code == 202

    alerts = kizuna_json(world.data, "ops", "alerts", "games-alerts")["alerts"]
    got = {(a["object_id"], a["rule"], a["asset"], a["producer"]) for a in alerts}
    assert got == {
        (sub["id"], "containment", "tokyo2020.jp", JPCERT),
        (ip["id"], "containment", "198.51.100.0/24", JPCERT),
        (phish["id"], "lookalike", "tokyo2020.jp", SOC),
        (sighting["id"], "relationship", "tokyo2020.jp", JPCERT),
        (report["id"], "relationship", "Jane Minister", SOC),
    }
    # --since reads only newer objects; the sighting still inherits from the older indicator it points at.
    phish_added = next(a["added"] for a in alerts if a["object_id"] == phish["id"])
    newer = kizuna_json(world.data, "ops", "alerts", "games-alerts", "--since", phish_added.rstrip("Z"))["alerts"]
    assert {(a["object_id"], a["rule"]) for a in newer} == {(sighting["id"], "relationship"),
                                                            (report["id"], "relationship")}
    text = kizuna(world.data, "ops", "alerts", "games-alerts").stdout
    assert "lookalike" in text and lookalike in text and "example.com" not in text
    # A relationship alert says what it came through by name, not by id (the sighting's indicator, the VIP).
    through = {a["object_id"]: (a["matched"], a["matched_name"]) for a in alerts if a["rule"] == "relationship"}
    assert through == {sighting["id"]: (phish["id"], "phish"), report["id"]: (vip, "Jane Minister")}
    assert "(phish)" in text and "(Jane Minister)" in text and phish["id"] not in text


def test_markings_inside_the_operation_hold_between_partners(world: World) -> None:
    created = world.op("Games Markings", "--tlp-default", "amber")
    jp, soc = tokens_of(created)[JPCERT], tokens_of(created)[SOC]
    kizuna_json(world.data, "ops", "assets", "add", "games-markings", "--domain", "markings.example.org")
    watch = world.get(soc, "games-markings-watchlist").json()["objects"]
    asset = next(o for o in watch if o["type"] == "domain-name")
    assert asset["value"] == "markings.example.org" and asset["object_marking_refs"] == [AMBER]
    amber = indicator(world.ids[JPCERT], "[domain-name:value = 'a.example.net']", AMBER)
    red = indicator(world.ids[JPCERT], "[domain-name:value = 'b.example.net']", RED)
    assert world.post(jp, "games-markings-intel", [amber, red]).status_code == 202
    seen = {o["id"] for o in world.get(soc, "games-markings-intel").json().get("objects", [])}
    assert amber["id"] in seen and red["id"] not in seen


def test_close_ends_the_tokens_and_declassification_needs_an_approval(world: World) -> None:
    created = world.op("Games Close")
    jp = tokens_of(created)[JPCERT]
    lesson = indicator(world.ids[JPCERT], "[domain-name:value = 'lesson.example.net']", AMBER, name="lesson")
    # A translation follows its object; an observable, which has no versions, is on the list too.
    translation = {"type": "language-content", "spec_version": "2.1", "id": f"language-content--{uuid.uuid4()}",
                   "created": lesson["created"], "modified": lesson["modified"], "created_by_ref": world.ids[JPCERT],
                   "object_ref": lesson["id"], "object_modified": lesson["modified"],
                   "contents": {"ja": {"name": "教訓"}}, "object_marking_refs": [AMBER]}
    observed = {"type": "domain-name", "spec_version": "2.1", "id": f"domain-name--{uuid.uuid4()}",
                "value": "lesson.example.net", "object_marking_refs": [AMBER]}
    assert world.post(jp, "games-close-intel", [lesson, translation, observed]).status_code == 202
    closed = kizuna_json(world.data, "ops", "close", "games-close")
    assert sorted((r["id"], r["tlp"], r["producer"]) for r in closed["review"]) == sorted(
        [(lesson["id"], "amber", JPCERT), (observed["id"], "amber", None)])
    assert world.get(jp, "games-close-intel").status_code == 401
    shown = kizuna_json(world.data, "ops", "show", "games-close")
    assert {p["token_state"] for p in shown["partners"]} == {"revoked"}
    assert shown["review"] == closed["review"]  # the list is there after the close too
    assert "Declassification review (2 AMBER objects" in kizuna(world.data, "ops", "show", "games-close").stdout
    upward = kizuna(world.data, "ops", "declassify", "games-close", lesson["id"], "--to", "red",
                    "--approved-by", "JPCERT duty officer", check=False)
    assert upward.returncode != 0 and "lower level" in upward.stderr
    done = kizuna_json(world.data, "ops", "declassify", "games-close", lesson["id"], "--to", "green",
                       "--approved-by", "JPCERT duty officer")
    assert (done["from"], done["to"]) == ("amber", "green") and done["translations"] == [translation["id"]]
    exported = json.loads(kizuna(world.data, "export", "--collection", "games-close-intel").stdout)["objects"]
    versions = [o for o in exported if o["id"] == lesson["id"]]
    assert sorted(v["object_marking_refs"][0] for v in versions) == sorted([AMBER, GREEN])
    released = next(o for o in exported if o["id"] == translation["id"] and o["object_marking_refs"] == [GREEN])
    assert released["object_modified"] == done["modified"]
    kizuna_json(world.data, "ops", "declassify", "games-close", observed["id"], "--to", "clear",
                "--approved-by", "JPCERT duty officer")
    left = kizuna_json(world.data, "ops", "show", "games-close")["review"]
    assert [r["id"] for r in left] == []  # both released: nothing AMBER is left to review
    audit = kizuna(world.data, "audit", "export").stdout
    assert "operation-declassified" in audit and "JPCERT duty officer" in audit


def dns_log(directory: Path, queries: list[str], *extra_lines: str) -> Path:
    """A Zeek DNS log (JSON lines) of these queries, in 2019, and any extra lines after them."""
    line = ('{{"ts":1568937600.5,"uid":"C{n}","id.orig_h":"10.0.0.{n}","id.orig_p":5353,"id.resp_h":"10.0.0.1",'
            '"id.resp_p":53,"proto":"udp","query":"{q}"}}')
    log = directory / "dns.log"
    log.write_text("\n".join([*(line.format(n=n, q=q) for n, q in enumerate(queries, 1)), *extra_lines]) + "\n")
    return log


def test_lookalikes_in_local_dns_logs_raise_alerts_and_promote_to_an_indicator(world: World, tmp_path: Path) -> None:
    world.op("Games Logs")
    kizuna_json(world.data, "ops", "assets", "add", "games-logs", "--domain", "rwc2019.jp")
    lookalike = sorted(d for d, fuzzer in lookalikes_of("rwc2019.jp").items() if fuzzer == "bitsquatting")[0]
    log = dns_log(tmp_path, [f"www.{lookalike}", f"www.{lookalike}", "www.example.com"], "not a log line")
    scanned = kizuna_json(world.data, "ops", "scan-logs", "games-logs", str(log), "--mapping", "zeek-dns")
    assert scanned["hits"] == [{"value": f"www.{lookalike}", "asset": "rwc2019.jp", "rule": "lookalike", "count": 2}]
    assert (scanned["lines"], scanned["unparsed"] + scanned["unmapped"]) == (4, 1)  # the line that is no log line
    assert [(p["file"], p["line"]) for p in scanned["unparsed_lines"]] == [(str(log), 4)]  # named, as match does
    (tmp_path / "quiet").mkdir()
    quiet = dns_log(tmp_path / "quiet", ["www.example.com"], "not a log line")  # no hit: nothing stored
    said = kizuna(world.data, "ops", "scan-logs", "games-logs", str(quiet), "--mapping", "zeek-dns").stdout
    assert f"\n  {quiet}:2: " in said, said
    garbage = tmp_path / "garbage.log"
    garbage.write_text("not a log line\nnor this\n")
    unread = kizuna(world.data, "ops", "scan-logs", "games-logs", str(garbage), "--json", check=False)
    error = json.loads(unread.stdout)["error"]  # nothing read is no clean bill of health
    assert unread.returncode == 1 and error["code"] == "no-log-lines" and (error["file"], error["line"]) == (
        str(garbage), 1)
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")  # as `kizuna match` says of an empty log: nothing was checked
    assert json.loads(kizuna(world.data, "ops", "scan-logs", "games-logs", str(empty), "--json",
                             check=False).stdout)["error"]["code"] == "no-log-lines"
    promoted = kizuna_json(world.data, "ops", "promote", "games-logs", lookalike)
    # Promoted again (a second duty officer, a retried script): the indicator already shared, not a second one.
    assert kizuna_json(world.data, "ops", "promote", "games-logs", lookalike) == promoted
    refused = kizuna(world.data, "ops", "promote", "games-logs", "example.com", check=False)
    assert refused.returncode != 0 and "not in the lookalike watch set" in refused.stderr
    alerts = kizuna_json(world.data, "ops", "alerts", "games-logs")["alerts"]
    assert sorted((a["object_type"], a["rule"], a["producer"]) for a in alerts) == [
        ("indicator", "lookalike", "NCSC UK"), ("observed-data", "lookalike", "NCSC UK")]
    assert promoted["id"] in {a["object_id"] for a in alerts}

    # Closed, the operation's record is final: no log is scanned or matched into it, nothing is promoted.
    kizuna_json(world.data, "ops", "close", "games-logs")
    for command in (["ops", "scan-logs", "games-logs", str(log)], ["match", str(log), "--operation", "games-logs"],
                    ["ops", "promote", "games-logs", lookalike]):
        refused = kizuna(world.data, *command, check=False)
        assert refused.returncode != 0 and refused.stderr.splitlines() == [
            f"kizuna {command[0] if command[0] == 'match' else 'ops ' + command[1]}: operation 'Games Logs' is "
            "closed"], refused.stderr
    assert kizuna_json(world.data, "ops", "alerts", "games-logs")["alerts"] == alerts


def test_scan_logs_names_a_missing_log_and_scans_the_others(world: World, tmp_path: Path) -> None:
    world.op("Games Missing")
    kizuna_json(world.data, "ops", "assets", "add", "games-missing", "--domain", "rwc2019.jp")
    lookalike = sorted(d for d, fuzzer in lookalikes_of("rwc2019.jp").items() if fuzzer == "bitsquatting")[0]
    log, missing = dns_log(tmp_path, [f"www.{lookalike}"]), tmp_path / "nope.log"
    text = kizuna(world.data, "ops", "scan-logs", "games-missing", str(missing), str(log), "--mapping", "zeek-dns",
                  check=False)
    assert text.returncode == 1 and "1 values hit the watchlist" in text.stdout, (text.stdout, text.stderr)
    assert text.stderr.splitlines() == [f"kizuna ops scan-logs: cannot read {missing}: No such file or directory",
                                        "kizuna ops scan-logs: 1 of 2 logs could not be read (listed above)"]
    scanned = kizuna(world.data, "ops", "scan-logs", "games-missing", str(log), str(missing), "--json", check=False)
    report = json.loads(scanned.stdout)
    assert scanned.returncode == 1 and report["lines"] == 1 and len(report["hits"]) == 1, report
    assert report["unreadable"] == [{"file": str(missing), "reason": "No such file or directory"}]
    alone = kizuna(world.data, "ops", "scan-logs", "games-missing", str(missing), "--json", check=False)
    assert alone.returncode == 1 and json.loads(alone.stdout)["error"]["file"] == str(missing)


def test_scan_logs_shows_its_progress_on_a_terminal_only(world: World, tmp_path: Path) -> None:
    world.op("Games Progress")
    log = dns_log(tmp_path, [f"www{n}.example.com" for n in range(50)])
    base = [sys.executable, "-m", "kizuna", "--data", str(world.data), "ops", "scan-logs", "games-progress", str(log)]
    status, _, screen = run_on_a_terminal(base, tmp_path)
    assert status == 0 and re.search(r"scan.*50 lines", screen), screen
    status, out, screen = run_on_a_terminal([*base, "--json"], tmp_path)
    assert status == 0 and json.loads(out)["lines"] == 50 and screen.strip() == ""


def test_the_lookalikes_of_a_long_domain_are_bounded_and_their_making_shows_on_a_terminal_only(
        world: World, tmp_path: Path) -> None:
    world.op("Games Long")
    long = "averyveryverylongdomainnameforlookalikes.example"
    base = [sys.executable, "-m", "kizuna", "--data", str(world.data), "ops", "assets", "add", "games-long"]
    status, out, screen = run_on_a_terminal([*base, "--domain", long, "--json"], tmp_path)
    assert status == 0 and screen.strip() == "", screen  # --json: no bar
    # dnstwist alone makes about 117,000 names of it: two-glyph homoglyph swaps grow with the square of the length
    assert 1_000 < json.loads(out)["lookalikes_watched"] <= MAX_LOOKALIKES, out
    found = lookalikes_of(long)
    kinds = set(found.values())
    assert {"homoglyph", "bitsquatting", "insertion", "omission", "transposition"} <= kinds, kinds
    assert found == lookalikes_of(long)  # the same set every time
    assert len(lookalikes_of("a" * 62 + "b.example")) <= MAX_LOOKALIKES  # the longest label DNS allows
    status, _, screen = run_on_a_terminal([*base, "--domain", "short.example"], tmp_path)
    assert status == 0 and re.search(r"lookalikes.*1/1", screen), screen


def test_match_with_an_operation_judges_indicators_and_the_watch_in_one_pass(world: World, tmp_path: Path) -> None:
    world.op("Games Match")
    kizuna_json(world.data, "ops", "assets", "add", "games-match", "--domain", "tickets2019.jp")
    lookalike = sorted(d for d, fuzzer in lookalikes_of("tickets2019.jp").items() if fuzzer == "homoglyph")[0]
    log = dns_log(tmp_path, [f"pay.{lookalike}", "c2.example.net", f"pay.{lookalike}", "www.example.com",
                             f"pay.{lookalike}"])
    iocs = tmp_path / "iocs.json"
    iocs.write_text(json.dumps([{**indicator(world.ids[SOC], "[domain-name:value = 'c2.example.net']"),
                                 "valid_from": "2019-01-01T00:00:00Z"}]))
    summary = kizuna_json(world.data, "match", str(log), "--indicators", str(iocs), "--operation", "Games Match")
    assert (summary["lines"], summary["hits"], summary["sightings"]) == (5, 1, 1)
    assert summary["operation"] == {"operation": "Games Match", "hits": [
        {"value": f"pay.{lookalike}", "asset": "tickets2019.jp", "rule": "lookalike", "count": 3}]}
    alerts = kizuna_json(world.data, "ops", "alerts", "games-match")["alerts"]
    assert [(a["object_type"], a["rule"], a["matched"]) for a in alerts] == [
        ("observed-data", "lookalike", f"pay.{lookalike}")]
    unknown = kizuna(world.data, "match", str(log), "--indicators", str(iocs), "--operation", "no such games",
                     check=False)
    assert unknown.returncode != 0 and unknown.stderr.count("\n") == 1
    assert unknown.stderr.startswith("kizuna match: no operation 'no such games'")
    yara = kizuna(world.data, "match", str(log), "--yara", "--operation", "games-match", "--json", check=False)
    assert yara.returncode == 2 and "--operation judges log lines" in json.loads(yara.stdout)["error"]["message"]


def test_incidents_and_a_bilingual_shift_report(world: World) -> None:
    created = world.op("Games Shift")
    soc = tokens_of(created)[SOC]
    kizuna_json(world.data, "ops", "assets", "add", "games-shift", "--domain", "shift.example.org")
    asset = kizuna_json(world.data, "ops", "assets", "list", "games-shift")["assets"][0]["id"]
    seen = indicator(world.ids[SOC], "[domain-name:value = 'c2.example.net']", name="C2 beacon")
    now = seen["created"]
    sightings = [{"type": "sighting", "spec_version": "2.1", "id": f"sighting--{uuid.uuid4()}", "created": now,
                  "modified": now, "sighting_of_ref": seen["id"], "count": 3, "created_by_ref": world.ids[SOC],
                  "object_marking_refs": [AMBER]}]
    assert world.post(soc, "games-shift-intel", [seen, *sightings]).status_code == 202
    incident = kizuna_json(world.data, "ops", "incident", "add", "games-shift", "--name", "Ticketing phish",
                           "--assign", SOC)["id"]
    kizuna_json(world.data, "ops", "incident", "update", "games-shift", incident, "--status", "contained")
    kizuna_json(world.data, "ops", "incident", "link", "games-shift", incident, asset)
    nowhere = "indicator--00000000-0000-4000-8000-000000000000"  # no object of the operation: no link to it
    refused = kizuna(world.data, "ops", "incident", "link", "games-shift", incident, nowhere, check=False)
    assert refused.returncode == 1 and f"no object '{nowhere}' in the collections of" in refused.stderr
    itself = kizuna(world.data, "ops", "incident", "link", "games-shift", incident, asset, incident, check=False)
    assert itself.returncode == 1 and itself.stderr == (
        f"kizuna ops incident link: {incident!r} is the incident itself: link it to other objects\n"), itself.stderr
    versions = [o for o in json.loads(kizuna(world.data, "export", "--collection", "games-shift-incidents").stdout)
                ["objects"] if o["id"] == incident]
    core = [v["extensions"][INCIDENT_CORE] for v in versions]
    assert sorted(c["investigation_status"] for c in core) == ["contained", "new"]
    assert {(c["extension_type"], c["determination"]) for c in core} == {("property-extension", "suspected")}
    assert [a["rule"] for a in kizuna_json(world.data, "ops", "alerts", "games-shift")["alerts"]] == ["relationship"]
    # A TLP:RED indicator about the asset raises its alert for the node, but what the operation publishes to all
    # its partners under TLP:AMBER names it nowhere: a link to it is marked RED, the report leaves it out.
    red = indicator(world.ids[SOC], "[domain-name:value = 'login.shift.example.org']", marking=RED, name="red")
    assert world.post(soc, "games-shift-intel", [red]).status_code == 202
    [link] = kizuna_json(world.data, "ops", "incident", "link", "games-shift", incident, red["id"])["relationships"]
    exported = json.loads(kizuna(world.data, "export", "--collection", "games-shift-incidents").stdout)["objects"]
    assert [o["object_marking_refs"] for o in exported if o["id"] == link] == [[RED]]

    future = kizuna(world.data, "ops", "report", "games-shift", "--since", "2099-01-01", check=False)
    assert future.returncode == 1 and "is in the future" in future.stderr  # not a report of nothing, stored
    english = kizuna_json(world.data, "ops", "report", "games-shift", "--since", "1h")
    assert ("Ticketing phish — status: contained, determination: suspected, assigned to: Tokyo 2020 SOC"
            in english["markdown"])
    assert "C2 beacon: 3 sightings" in english["markdown"]
    # One incident reads as one: counts follow their labels, so neither language needs a plural form.
    assert "Incidents: 1, alerts: 1, new objects: " in english["markdown"]
    assert "## Sync health\n\n- no partner nodes configured" in english["markdown"]
    japanese = kizuna_json(world.data, "ops", "report", "games-shift", "--since", "1h", "--lang", "ja")
    # The Japanese labels are the console catalog's (kizuna.po), the same words as its pages.
    assert "状態: 封じ込め済み, 判定: 疑い, 担当: Tokyo 2020 SOC" in japanese["markdown"]
    assert "## サイティングの多い指標" in japanese["markdown"] and "## Most sighted" not in japanese["markdown"]
    assert "インシデント 1 件、アラート 1 件" in japanese["markdown"]
    stored = {o["id"]: o for o in json.loads(kizuna(world.data, "export", "--collection",
                                                    "games-shift-incidents").stdout)["objects"]}
    report, translation = (stored[i] for i in japanese["objects"])
    assert report["type"] == "report" and incident in report["object_refs"] and red["id"] not in report["object_refs"]
    assert translation["object_ref"] == report["id"] and "シフトレポート" in translation["contents"]["ja"]["name"]
    # The operation's own reports are not news: they raise no alert of their own.
    assert "report" not in {a["object_type"] for a in kizuna_json(world.data, "ops", "alerts", "games-shift")["alerts"]}


def test_a_report_whose_files_cannot_be_written_is_not_stored(world: World, tmp_path: Path) -> None:
    """The report is shared with the partners once stored: a file it cannot write fails it before, leaving nothing."""
    world.op("Games Paths")

    def reports() -> list[str]:
        exported = json.loads(kizuna(world.data, "export", "--collection", "games-paths-incidents").stdout)
        return [o["id"] for o in exported["objects"] if o["type"] == "report"]

    missing = tmp_path / "nowhere"
    kept = tmp_path / "report.md"
    for args in (["-o", str(missing / "x.md")], ["--html", str(missing / "x.html")],
                 ["-o", str(kept), "--html", str(missing / "x.html")], ["-o", str(kept), "--html", str(kept)]):
        failed = kizuna(world.data, "ops", "report", "games-paths", *args, "--json", check=False)
        error = json.loads(failed.stdout)["error"]
        assert failed.returncode in (1, 2) and error["code"] in ("io", "usage"), failed.stdout
        assert reports() == [] and sorted(path.name for path in tmp_path.iterdir()) == []  # not even a part file
    written = kizuna_json(world.data, "ops", "report", "games-paths", "-o", str(kept), "--html",
                          str(tmp_path / "report.html"))
    assert reports() == [written["report"]] and kept.read_text() == written["markdown"]
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_an_operation_on_postgresql_keeps_its_record_assets_and_alerts(tmp_path: Path) -> None:
    database = create_pg_database()
    try:
        data = tmp_path / "pg-node"
        kizuna_json(data, "init", "--org-name", "NCSC UK", "--country", "GBR", "--store", database.url)
        partner = kizuna_json(data, "orgs", "create", JPCERT, "--country", "JPN")["id"]
        # Ending tomorrow, so a run across midnight (TODAY is read when the module loads) still creates it.
        tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        created = kizuna_json(data, "ops", "create", "PG Games", "--from", str(TODAY), "--to", str(tomorrow),
                              "--partner", JPCERT, "--grace-days", "0")
        assert created["operation"]["tokens_expire"].startswith(f"{tomorrow + dt.timedelta(days=1)}T00:00:00")
        kizuna_json(data, "ops", "assets", "add", "pg-games", "--cidr", "2001:db8::/32", "--domain", "pg.example.org")
        bundle = tmp_path / "bundle.json"
        inside = indicator(partner, "[ipv6-addr:value = '2001:db8::1']", name="v6")
        bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [inside]}))
        kizuna_json(data, "import", str(bundle), "--collection", "pg-games-intel")
        alerts = kizuna_json(data, "ops", "alerts", "pg-games")["alerts"]
        assert [(a["object_id"], a["rule"], a["asset"], a["producer"]) for a in alerts] == [
            (inside["id"], "containment", "2001:db8::/32", JPCERT)]
        assert kizuna_json(data, "ops", "list")["operations"][0]["state"] == "open"
    finally:
        database.drop()


def test_incidents_use_the_incident_core_extension_that_a_generic_stix2_consumer_parses(world: World) -> None:
    """Incident Core Extension (extension-definition--ef765651-680c-498d-9894-99799f2fa126), section 2:
    "determination (required) ... extension_type (required) ... The value of this property MUST be
    property-extension ... investigation_status (required)"; section 5: "identity contact-for incident:
    An identity should be considered a point of contact for an incident"."""
    created = world.op("Games Extension")
    jp = tokens_of(created)[JPCERT]
    made = kizuna_json(world.data, "ops", "incident", "add", "games-extension", "--name", "DDoS on ticketing",
                       "--assign", JPCERT, "--determination", "blocked")
    kizuna_json(world.data, "ops", "incident", "update", "games-extension", made["id"], "--assign", SOC,
                "--status", "investigating")
    # A partner reads the collection over TAXII with taxii2-client and parses it with stix2, refusing any
    # custom property: the incident and its contact-for relationships are plain STIX 2.1.
    incidents_id = created["operation"]["collections"]["incidents"]["id"]
    collection = Collection(f"{world.server.base}/main/collections/{incidents_id}/", user="jpcert", password=jp)
    parsed = [stix2.parse(o, allow_custom=False) for o in collection.get_objects()["objects"]
              if o["type"] in ("incident", "relationship")]
    incidents = [o for o in parsed if o.type == "incident"]
    assert [(i.name, i.extensions[INCIDENT_CORE]["investigation_status"], i.extensions[INCIDENT_CORE]["determination"])
            for i in incidents] == [("DDoS on ticketing", "open", "blocked")]
    contacts = {(r.source_ref, bool(getattr(r, "revoked", False))) for r in parsed
                if r.type == "relationship" and r.relationship_type == "contact-for"}
    assert contacts == {(world.ids[JPCERT], True), (world.ids[SOC], False)}
    report = kizuna_json(world.data, "ops", "report", "games-extension", "--since", "1h")["markdown"]
    assert "DDoS on ticketing — status: investigating, determination: blocked, assigned to: Tokyo 2020 SOC" in report


def test_incidents_written_with_custom_properties_are_still_read_and_move_to_the_extension(world: World) -> None:
    created = world.op("Games Legacy")
    old = indicator(world.ids[SOC], "[domain-name:value = 'x.example']")  # for its timestamps
    legacy = {"type": "incident", "spec_version": "2.1", "id": f"incident--{uuid.uuid4()}", "created": old["created"],
              "modified": old["created"], "name": "Old-style incident", "x_kizuna_status": "contained",
              "x_kizuna_assigned_to": SOC, "object_marking_refs": [AMBER]}
    with pytest.raises(stix2.exceptions.ExtraPropertiesError):
        stix2.parse(legacy, allow_custom=False)  # why the extension: a strict consumer refuses these
    assert world.post(tokens_of(created)[SOC], "games-legacy-incidents", [legacy]).status_code == 202
    report = kizuna_json(world.data, "ops", "report", "games-legacy", "--since", "1h")["markdown"]
    assert "Old-style incident — status: contained, assigned to: Tokyo 2020 SOC" in report
    moved = kizuna_json(world.data, "ops", "incident", "update", "games-legacy", legacy["id"], "--status", "closed")
    assert (moved["status"], moved["determination"]) == ("closed", "suspected")
    newest = [o for o in json.loads(kizuna(world.data, "export", "--collection", "games-legacy-incidents").stdout)
              ["objects"] if o["id"] == legacy["id"] and o["modified"] == moved["modified"]][0]
    assert "x_kizuna_status" not in newest and newest["extensions"][INCIDENT_CORE]["investigation_status"] == "closed"
    stix2.parse(newest, allow_custom=False)
    report = kizuna_json(world.data, "ops", "report", "games-legacy", "--since", "1h")["markdown"]
    assert "Old-style incident — status: closed, determination: suspected, assigned to: Tokyo 2020 SOC" in report


@pytest.mark.parametrize("level", ["clear", "green", "amber", "amber+strict", "red"])
def test_what_an_operation_publishes_carries_its_default_tlp_clear_included(level: str) -> None:
    """TLP:CLEAR is level 0: read with `or AMBER`, an operation created with --tlp-default clear published its
    assets, incidents and sightings as TLP:AMBER."""
    from kizuna.ops.records import Operation
    from kizuna.policy.tlp import TLP2_IDS, TlpLevel

    operation = Operation("Cup", "cup", "2027-09-20T00:00:00Z", "2027-11-03T00:00:00Z", "2027-11-10T00:00:00Z",
                          level, "identity--00000000-0000-4000-8000-000000000001",
                          "grouping--00000000-0000-4000-8000-000000000002", {})
    assert operation.marking_refs == [TLP2_IDS[TlpLevel.from_token(level)]]
