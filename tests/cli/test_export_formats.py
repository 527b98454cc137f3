"""``kizuna export`` in every format, read back with the tools that consume them, as real processes.

RPZ zones are parsed with dnspython, Suricata rules with suricataparser and MISP events with
PyMISP; a partner's export (``--as-org``) is checked to see exactly less than the administrator's.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import threading
import uuid
from pathlib import Path
from typing import Any

import dns.zone
import pytest
from pymisp import MISPEvent
from suricataparser import parse_rule

from tests.conftest import imported_with_rejections, kizuna, kizuna_json

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "formats"
TLP_CLEAR = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
TLP_AMBER_STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
OPEN_DOMAIN, STRICT_DOMAIN = "open-share.example.net", "strict-share.example.net"


def indicator(domain: str, marking: str) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid5(uuid.NAMESPACE_DNS, domain)}",
            "created": "2026-01-05T00:00:00.000Z", "modified": "2026-01-05T00:00:00.000Z", "name": domain,
            "pattern": f"[domain-name:value = '{domain}']", "pattern_type": "stix",
            "valid_from": "2026-01-05T00:00:00Z", "object_marking_refs": [marking]}


def fill(data_dir: Path, tmp_path: Path) -> None:
    kizuna_json(data_dir, "collections", "create", "--title", "Out", "--alias", "out")
    kizuna_json(data_dir, "orgs", "create", "Partner", "--country", "JPN")
    for example in ("misp-event.json", "stix20-bundle.json"):
        kizuna_json(data_dir, "import", str(EXAMPLES / example), "--collection", "out")
    imported_with_rejections(data_dir, str(EXAMPLES / "iocs.csv"), "--collection", "out")  # its line 8 is bad
    bundle = tmp_path / "marked.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": [
        indicator(OPEN_DOMAIN, TLP_CLEAR), indicator(STRICT_DOMAIN, TLP_AMBER_STRICT)]}))
    kizuna_json(data_dir, "import", str(bundle), "--collection", "out")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("export-formats")
    data_dir = base / "node"
    kizuna_json(data_dir, "init", "--org-name", "NCSC UK", "--country", "GBR")
    fill(data_dir, base)
    return data_dir


def export(data_dir: Path, tmp_path: Path, fmt: str, *args: str) -> tuple[Path, dict[str, Any]]:
    out = tmp_path / f"export.{fmt}"
    summary = kizuna_json(data_dir, "export", "--collection", "out", "--format", fmt, "-o", str(out), *args)
    return out, summary


@pytest.mark.parametrize("fmt", ["stix", "misp", "csv", "txt", "rpz", "zeek", "suricata"])
def test_every_format_writes_a_file_and_says_what_it_wrote(node: Path, tmp_path: Path, fmt: str) -> None:
    out, summary = export(node, tmp_path, fmt, *(["--type", "domain"] if fmt == "txt" else []))
    assert summary["format"] == fmt and summary["objects"] > 0
    assert out.stat().st_size == summary["bytes"] > 0
    assert not list(tmp_path.glob(".*.part"))  # no temporary file left behind


def test_an_export_writes_into_a_pipe_or_device_and_through_a_link(node: Path, tmp_path: Path) -> None:
    """-o /dev/null or a FIFO another tool reads is a stream: written into, not renamed over (a newcomer's
    `-o /dev/null` once left a plain file where the device was)."""
    fifo = tmp_path / "zone.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    summary = kizuna_json(node, "export", "--collection", "out", "--format", "rpz", "--rpz-origin", "rpz.example",
                          "-o", str(fifo))
    reader.join(timeout=60)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and len(received[0]) == summary["bytes"] > 0
    assert b"$ORIGIN rpz.example." in received[0]
    kizuna_json(node, "export", "--collection", "out", "--format", "txt", "--type", "domain", "-o", os.devnull)
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    # A link is written through to its file, which keeps its permissions.
    real = tmp_path / "real.txt"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    kizuna_json(node, "export", "--collection", "out", "--format", "txt", "--type", "domain", "-o", str(link))
    assert link.is_symlink() and OPEN_DOMAIN in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


@pytest.mark.parametrize(("fmt", "option"), [("csv", ["--type", "domain"]), ("stix", ["--min-confidence", "50"]),
                                           ("txt", ["--rpz-origin", "rpz.example.org"]), ("rpz", ["--info", "x"])])
def test_an_option_the_format_ignores_is_refused(node: Path, fmt: str, option: list[str]) -> None:
    """`export --format csv --type domain` wrote every kind of IOC without a word."""
    result = kizuna(node, "export", "--collection", "out", "--format", fmt, *option, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"kizuna export: {option[0]} applies to ") and f"not {fmt}" in result.stderr


def test_rpz_zone_parses_with_dnspython(node: Path, tmp_path: Path) -> None:
    out, _ = export(node, tmp_path, "rpz", "--rpz-origin", "rpz.example.org")
    zone = dns.zone.from_text(out.read_text(), origin="rpz.example.org.", relativize=False)
    names = {str(name) for name in zone.nodes}
    assert "tickets-verify.example.net.rpz.example.org." in names
    assert "*.cdn-tickets.example.org.rpz.example.org." in names


@pytest.mark.parametrize("origin", ["", ".", "rpz..example", "bad origin!", "-rpz.example"])
def test_an_rpz_zone_needs_a_usable_name(node: Path, tmp_path: Path, origin: str) -> None:
    """An empty origin wrote `$ORIGIN .` (the root zone) and an empty label a name no resolver loads."""
    out = tmp_path / "zone.rpz"
    failed = kizuna(node, "export", "--collection", "out", "--format", "rpz", "--rpz-origin", origin, "-o", str(out),
                    check=False)
    assert failed.returncode == 1 and "is not a usable zone name" in failed.stderr and not out.exists()
    defined = kizuna(node, "feeds", "create", "zone-x", "--collection", "out", "--format", "rpz", "--rpz-origin",
                     origin, check=False)
    assert defined.returncode == 1 and "is not a usable zone name" in defined.stderr


def test_suricata_rules_parse_with_suricataparser(node: Path, tmp_path: Path) -> None:
    out, _ = export(node, tmp_path, "suricata")
    rules = [parse_rule(line) for line in out.read_text().splitlines() if line.strip()]
    assert rules and all(rule is not None for rule in rules)
    assert len({rule.sid for rule in rules if rule is not None}) == len(rules)
    assert any("tickets-verify.example.net" in (rule.raw if rule else "") for rule in rules)


def test_misp_export_loads_in_pymisp(node: Path, tmp_path: Path) -> None:
    out, _ = export(node, tmp_path, "misp", "--info", "Kizuna test export")
    event = MISPEvent()
    event.load_file(str(out))
    assert event.info == "Kizuna test export"  # misp-stix put it before the report's name
    values = {a.value for a in event.attributes} | {a.value for o in event.objects for a in o.attributes}
    assert "tickets-verify.example.net" in values


def test_misp_feed_directory_has_manifest_hashes_and_events(node: Path, tmp_path: Path) -> None:
    feed = tmp_path / "feed"
    summary = kizuna_json(node, "export", "--collection", "out", "--format", "misp-feed", "-o", str(feed))
    manifest = json.loads((feed / "manifest.json").read_text())
    assert len(manifest) == summary["events"] > 0
    assert {p.stem for p in feed.glob("*.json") if p.name != "manifest.json"} == set(manifest)
    hashes = (feed / "hashes.csv").read_text().splitlines()
    digest = hashlib.md5(b"tickets-verify.example.net", usedforsecurity=False).hexdigest()
    assert any(line.startswith(digest + ",") and line.split(",")[1] in manifest for line in hashes)
    # The example event's date, analysis and threat level went into the store on its report and come back out
    # (before, the feed said "initial", "undefined" and the day of the export).
    example = json.loads((EXAMPLES / "misp-event.json").read_text())["Event"]
    entry = manifest[example["uuid"]]
    assert {name: entry[name] for name in ("date", "analysis", "threat_level_id")} == {
        name: example[name] for name in ("date", "analysis", "threat_level_id")}
    written = json.loads((feed / f"{example['uuid']}.json").read_text())["Event"]
    assert (written["date"], written["analysis"], written["threat_level_id"]) == ("2026-03-02", "2", "2")
    # Kizuna reads its own feed's events back as MISP without being told (they were taken for STIX 2.0).
    kizuna_json(node, "collections", "create", "--title", "Feed copy", "--alias", "feed-copy")
    for event in manifest:
        imported = kizuna_json(node, "import", str(feed / f"{event}.json"), "--collection", "feed-copy")
        assert [source["format"] for source in imported["sources"]] == ["misp"] and imported["stored"] > 0


def _feed_files(feed: Path) -> tuple[set[str], set[str]]:
    """The events a feed directory lists, and the event files it holds."""
    listed = set(json.loads((feed / "manifest.json").read_text()))
    return listed, {p.stem for p in feed.iterdir() if p.suffix == ".json" and p.name != "manifest.json"}


def test_a_misp_feed_directory_holds_only_what_one_view_allows(node: Path, tmp_path: Path) -> None:
    """A MISP feed exported for one view (the administrator's) is not topped up by an export for a narrower one
    (a TLP ceiling, a partner): that is refused in one line naming the directory, which stays as it was, and
    with --replace the directory holds exactly what a fresh export of that view writes. The same view
    exports into its own directory again."""
    pub, fresh = tmp_path / "pub", tmp_path / "fresh"
    kizuna_json(node, "export", "--collection", "out", "--format", "misp-feed", "-o", str(pub))
    before = {p.name: p.read_bytes() for p in pub.iterdir()}
    for narrower in (["--tlp-max", "clear"], ["--as-org", "Partner"]):
        refused = kizuna(node, "export", "--collection", "out", "--format", "misp-feed", *narrower, "-o", str(pub),
                         check=False)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert len(refused.stderr.splitlines()) == 1 and refused.stderr.startswith("kizuna export: ")
        assert str(pub) in refused.stderr and "--replace" in refused.stderr
        assert {p.name: p.read_bytes() for p in pub.iterdir()} == before
    as_json = kizuna(node, "export", "--collection", "out", "--format", "misp-feed", "--tlp-max", "clear",
                     "-o", str(pub), "--json", check=False)
    assert as_json.returncode != 0 and "--replace" in json.loads(as_json.stdout)["error"]["message"]

    kizuna_json(node, "export", "--collection", "out", "--format", "misp-feed", "--tlp-max", "clear", "-o", str(fresh))
    kizuna_json(node, "export", "--collection", "out", "--format", "misp-feed", "--tlp-max", "clear", "-o", str(pub),
                "--replace")
    assert _feed_files(pub) == _feed_files(fresh)
    assert sorted((pub / "hashes.csv").read_text().splitlines()) == sorted(
        (fresh / "hashes.csv").read_text().splitlines())
    # The same view again: written in place, nothing refused.
    again = kizuna_json(node, "export", "--collection", "out", "--format", "misp-feed", "--tlp-max", "clear",
                        "-o", str(pub))
    assert again["events"] == len(_feed_files(pub)[0]) and _feed_files(pub) == _feed_files(fresh)


def test_zeek_intel_and_warninglisted_values_only_when_forced(node: Path, tmp_path: Path) -> None:
    out, _ = export(node, tmp_path, "zeek")
    lines = out.read_text().splitlines()
    assert lines[0].startswith("#fields\tindicator\tindicator_type")
    assert any(line.startswith("tickets-verify.example.net\tIntel::DOMAIN\t") for line in lines)
    plain = kizuna(node, "export", "--collection", "out", "--format", "txt", "--type", "ip").stdout.split()
    forced = kizuna(node, "export", "--collection", "out", "--format", "txt", "--type", "ip",
                    "--include-warninglisted").stdout.split()
    assert "8.8.8.8" not in plain and "8.8.8.8" in forced


def test_feed_limits_tlp_and_confidence(node: Path) -> None:
    every = set(kizuna(node, "export", "--collection", "out", "--format", "txt", "--type", "domain").stdout.split())
    assert {OPEN_DOMAIN, STRICT_DOMAIN} <= every
    capped = set(kizuna(node, "export", "--collection", "out", "--format", "txt", "--type", "domain",
                        "--tlp-max", "green").stdout.split())
    assert OPEN_DOMAIN in capped and STRICT_DOMAIN not in capped
    # The ceiling has one name in both commands (feeds create's --tlp-ceiling is taken too), in any case.
    assert set(kizuna(node, "export", "--collection", "out", "--format", "txt", "--type", "domain",
                      "--tlp-ceiling", "GREEN").stdout.split()) == capped
    confident = kizuna(node, "export", "--collection", "out", "--format", "txt", "--type", "domain",
                       "--min-confidence", "1").stdout.split()
    assert confident == []  # none of these indicators states a confidence


def test_a_partner_exports_exactly_its_taxii_view(tmp_path: Path, store_url: str) -> None:
    data_dir = tmp_path / "node"
    kizuna_json(data_dir, "init", "--org-name", "NCSC UK", "--country", "GBR", "--store", store_url)
    fill(data_dir, tmp_path)
    admin_out, admin = export(data_dir, tmp_path, "stix")
    partner_out = tmp_path / "partner.json"
    partner = kizuna_json(data_dir, "export", "--collection", "out", "--as-org", "Partner", "-o", str(partner_out))
    admin_ids = {o["id"] for o in json.loads(admin_out.read_text())["objects"]}
    partner_ids = {o["id"] for o in json.loads(partner_out.read_text())["objects"]}
    strict_id = indicator(STRICT_DOMAIN, TLP_AMBER_STRICT)["id"]
    assert strict_id in admin_ids and strict_id not in partner_ids
    assert partner_ids < admin_ids and partner["objects"] < admin["objects"]
    partner_feed = kizuna(data_dir, "export", "--collection", "out", "--format", "txt", "--type", "domain",
                          "--as-org", "Partner").stdout.split()
    assert OPEN_DOMAIN in partner_feed and STRICT_DOMAIN not in partner_feed
    token = kizuna_json(data_dir, "tokens", "create", "--org", "Partner", "--read", "out", "--label", "feed")
    token_out = tmp_path / "token.json"
    kizuna_json(data_dir, "export", "--collection", "out", "--as-token-id", token["id"], "-o", str(token_out))
    token_ids = {o["id"] for o in json.loads(token_out.read_text())["objects"]}
    assert indicator(OPEN_DOMAIN, TLP_CLEAR)["id"] in token_ids and strict_id not in token_ids
    unknown = kizuna(data_dir, "export", "--collection", "out", "--as-org", "Nobody", check=False)
    assert unknown.returncode == 1 and len(unknown.stderr.splitlines()) == 1 and "Nobody" in unknown.stderr


def test_csv_to_stix_to_blocklist_returns_exactly_the_accepted_values(node: Path, tmp_path: Path) -> None:
    kizuna_json(node, "collections", "create", "--title", "Round trip", "--alias", "rt")
    source = tmp_path / "domains.csv"
    source.write_text("domain,comment\nalpha.example.net,first\nbeta[.]example[.]org,defanged\n"
                      "not a domain!,bad line\nGAMMA.example.com,upper case\nalpha.example.net,repeated\n")
    report = imported_with_rejections(node, str(source), "--collection", "rt", "--no-warninglists")
    assert [r["where"] for r in report["sources"][0]["rejected_input"]] == [f"{source}:4"]
    listed = kizuna(node, "export", "--collection", "rt", "--format", "txt", "--type", "domain").stdout.split()
    assert sorted(listed) == ["alpha.example.net", "beta.example.org", "gamma.example.com"]


# International names as a newcomer's list gave them: a DNS filter, proxy or IDS compares the names and URLs it
# sees on the wire (A-labels, a percent-encoded path), so every machine feed must write that form.
IDN_CSV = ("type,value\ndomain,bücher-evil.de\ndomain,例え.テスト\ndomain,xn--bcher-evil-9db.de\n"
           "url,http://例え.jp/パス\nurl,http://bücher.de/a%20b/ü?q=ä\nemail,bob@bücher.de\n")
REFUSED_BY_IDNA = "ü" * 70 + ".de"  # one label longer than 63 octets once punycoded


@pytest.fixture(scope="module")
def idn_node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("export-idn")
    data_dir = base / "node"
    kizuna_json(data_dir, "init", "--org-name", "JPCERT", "--country", "JPN")
    kizuna_json(data_dir, "collections", "create", "--title", "IDN", "--alias", "idn")
    (base / "odd.csv").write_text(IDN_CSV, encoding="utf-8")
    kizuna_json(data_dir, "import", str(base / "odd.csv"), "--collection", "idn", "--tlp", "green")
    bundle = base / "refused.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}",
                                  "objects": [indicator(REFUSED_BY_IDNA, TLP_CLEAR)]}))
    kizuna_json(data_dir, "import", str(bundle), "--collection", "idn")
    return data_dir


def test_blocklists_write_international_names_as_resolvers_and_proxies_see_them(idn_node: Path,
                                                                                tmp_path: Path) -> None:
    def listed(kind: str) -> tuple[list[str], dict[str, Any]]:
        out = tmp_path / f"{kind}.txt"
        summary = kizuna_json(idn_node, "export", "--collection", "idn", "--format", "txt", "--type", kind,
                              "-o", str(out))
        return out.read_text(encoding="utf-8").splitlines(), summary

    domains, summary = listed("domain")
    # the Unicode and the A-label spelling of one name are one line
    assert sorted(domains) == ["xn--bcher-evil-9db.de", "xn--r8jz45g.xn--zckzah"]
    assert [(loss["value"], loss["reason"]) for loss in summary["losses"]] == [
        (REFUSED_BY_IDNA, "not a valid domain value")]
    urls, _ = listed("url")
    # the escape the URL already had is kept, not escaped again
    assert sorted(urls) == ["http://xn--bcher-kva.de/a%20b/%C3%BC?q=%C3%A4", "http://xn--r8jz45g.jp/%E3%83%91%E3%82%B9"]
    emails, _ = listed("email")
    assert emails == ["bob@xn--bcher-kva.de"]


def test_rpz_holds_an_idn_given_in_both_spellings_once(idn_node: Path, tmp_path: Path) -> None:
    out = tmp_path / "idn.rpz"
    kizuna_json(idn_node, "export", "--collection", "idn", "--format", "rpz", "-o", str(out))
    text = out.read_text(encoding="utf-8")
    zone = dns.zone.from_text(text, origin="rpz.kizuna.invalid.", relativize=True)
    assert {n.to_text() for n in zone.nodes} - {"@"} == {
        "xn--bcher-evil-9db.de", "*.xn--bcher-evil-9db.de", "xn--r8jz45g.xn--zckzah", "*.xn--r8jz45g.xn--zckzah"}
    assert text.splitlines().count("xn--bcher-evil-9db.de CNAME .") == 1


def test_zeek_intel_matches_an_idn_url_as_zeek_sees_its_host_header_and_path(idn_node: Path,
                                                                             tmp_path: Path) -> None:
    out = tmp_path / "idn.intel"
    kizuna_json(idn_node, "export", "--collection", "idn", "--format", "zeek", "-o", str(out))
    rows = {tuple(line.split("\t")[:2]) for line in out.read_text(encoding="utf-8").splitlines()[1:]}
    assert rows == {
        ("xn--bcher-evil-9db.de", "Intel::DOMAIN"), ("xn--r8jz45g.xn--zckzah", "Intel::DOMAIN"),
        ("xn--r8jz45g.jp/%E3%83%91%E3%82%B9", "Intel::URL"), ("xn--bcher-kva.de/a%20b/%C3%BC?q=%C3%A4", "Intel::URL"),
        ("bob@xn--bcher-kva.de", "Intel::EMAIL")}


def test_csv_keeps_an_idn_as_people_read_it_and_adds_the_form_devices_match(idn_node: Path, tmp_path: Path) -> None:
    out = tmp_path / "idn.csv"
    kizuna_json(idn_node, "export", "--collection", "idn", "--format", "csv", "-o", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {(row["value"], row["wire_value"]) for row in rows} == {
        ("bücher-evil.de", "xn--bcher-evil-9db.de"), ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ("xn--bcher-evil-9db.de", ""),  # ASCII: its own wire form
        ("http://例え.jp/パス", "http://xn--r8jz45g.jp/%E3%83%91%E3%82%B9"),
        ("http://bücher.de/a%20b/ü?q=ä", "http://xn--bcher-kva.de/a%20b/%C3%BC?q=%C3%A4"),
        ("bob@bücher.de", "bob@xn--bcher-kva.de")}
