"""``kizuna import`` of MISP, IOC lists, STIX 2.0 and STIX 1.x, as real processes on real stores.

Files come from examples/formats (what the README tells operators to run) and tests/fixtures; URLs
are served by a real HTTP server on a loopback port.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import imported_with_rejections, kizuna, kizuna_json

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "formats"
MISP_EVENT = EXAMPLES / "misp-event.json"
IOC_CSV = EXAMPLES / "iocs.csv"
STIX20 = EXAMPLES / "stix20-bundle.json"
STIX1 = EXAMPLES / "stix1-indicator.xml"
GALAXY_EVENT = ROOT / "tests" / "fixtures" / "misp" / "galaxy_1.json"
EVENT_UUID = "6c1f0e2a-4b7d-4f38-9a51-2d0c8e7b9f10"


@pytest.fixture
def data_dir(tmp_path: Path, store_url: str) -> Path:
    directory = tmp_path / "node"
    kizuna_json(directory, "init", "--org-name", "NCSC UK", "--country", "GBR", "--store", store_url)
    kizuna_json(directory, "collections", "create", "--title", "In", "--alias", "in")
    return directory


@pytest.fixture
def sqlite_node(tmp_path: Path) -> Path:
    directory = tmp_path / "node"
    kizuna_json(directory, "init", "--org-name", "NCSC UK", "--country", "GBR")
    kizuna_json(directory, "collections", "create", "--title", "In", "--alias", "in")
    return directory


def stored(data_dir: Path) -> list[dict[str, Any]]:
    page = kizuna_json(data_dir, "objects", "list", "--collection", "in", "--limit", "1000")
    assert not page["more"]
    return list(page.get("objects", []))


def import_reports(data_dir: Path) -> list[dict[str, Any]]:
    lines = kizuna(data_dir, "audit", "export", "--kind", "import-report").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert all(record["kind"] == "import-report" for record in records)
    return [record["body"] for record in records]


def assert_one_line_failure(result: Any, where: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("kizuna import: ")
    assert where in result.stderr


# --- MISP --------------------------------------------------------------------------------------


def test_misp_event_is_converted_and_its_loss_report_is_kept_in_the_audit_log(data_dir: Path) -> None:
    report = kizuna_json(data_dir, "import", str(MISP_EVENT), "--collection", "in")
    (source,) = report["sources"]
    assert source["format"] == "misp" and report["stored"] > 0
    # A new collection holds nothing already: the TLP:GREEN definition the event brings is stored as its own.
    assert (report["duplicates"], report["added_by_node"]) == (0, 5)
    # 'this community only' has no Kizuna equivalent: reported against the event's uuid.
    assert any(loss["ref"] == EVENT_UUID and loss["field"] == "distribution" for loss in source["losses"])
    assert source["flagged"] == 1  # the 8.8.8.8 attribute is on the public-resolver warninglist
    patterns = {o["pattern"]: o for o in stored(data_dir) if o["type"] == "indicator"}
    assert any("tickets-verify.example.net" in p for p in patterns)
    (flagged,) = [o for p, o in patterns.items() if "8.8.8.8" in p]
    assert flagged["x_kizuna_warninglists"] == ["public-dns-v4"]
    (audited,) = import_reports(data_dir)
    assert audited["sources"][0]["losses"] == source["losses"]
    assert audited["stored"] == report["stored"]


def test_a_misp_directory_imports_every_event_and_reports_the_bad_file(data_dir: Path, tmp_path: Path) -> None:
    events = tmp_path / "events"
    events.mkdir()
    shutil.copy(MISP_EVENT, events / "a-event.json")
    shutil.copy(GALAXY_EVENT, events / "b-galaxy.json")
    (events / "c-broken.json").write_text('{"Event": {"info": "cut short",\n "Attribute": [}}')
    # A directory's README and licence are prose: their hosts and hashes are not indicators.
    (events / "README.md").write_text("Events from https://misp.example.org, see also example.net\n")
    (events / "LICENSE-CC-BY.txt").write_text("Licensed under CC BY 4.0, https://creativecommons.example\n")
    (events / "d-empty.json").write_bytes(b"")  # nothing usable: a failure, as the file on its own is
    (events / "archive").mkdir()  # one level deep: named as skipped, not read and not passed over in silence
    shutil.copy(MISP_EVENT, events / "archive" / "old-event.json")
    result = kizuna(data_dir, "import", str(events), "--collection", "in", "--json", check=False)
    assert result.returncode == 1  # a file was not imported
    report = json.loads(result.stdout)
    assert report["skipped"] == [str(events / "LICENSE-CC-BY.txt"), str(events / "README.md")]
    assert report["skipped_directories"] == [str(events / "archive")]
    assert [s["source"] for s in report["sources"]] == [str(events / "a-event.json"), str(events / "b-galaxy.json")]
    bad, empty = report["failed_sources"]
    assert bad["where"] == f"{events / 'c-broken.json'}:2" and "not valid JSON" in bad["error"]
    assert empty["source"] == str(events / "d-empty.json") and "nothing to import" in empty["error"]
    text = kizuna(data_dir, "import", str(events), "--collection", "in", check=False)
    assert f"{events / 'archive'}: skipped: a directory" in text.stdout
    assert text.stderr == "kizuna import: 2 of 4 files not imported (listed above)\n"
    ids = {o["id"] for o in stored(data_dir)}
    galaxy_uuid = json.loads(GALAXY_EVENT.read_text())["Event"]["uuid"]
    assert {f"grouping--{EVENT_UUID}", f"grouping--{galaxy_uuid}"} <= ids


# --- IOC lists ---------------------------------------------------------------------------------


def test_csv_with_a_bad_line_imports_the_rest_and_names_the_line(data_dir: Path) -> None:
    result = kizuna(data_dir, "import", str(IOC_CSV), "--collection", "in", "--tlp", "green", "--label", "phishing",
                    "--confidence", "70", "--valid-until", "2099-01-01", check=False)
    assert result.returncode == 1  # the rest is imported; the line left out fails the command
    assert result.stderr == "kizuna import: 1 input record not converted (listed above)\n"
    assert f"{IOC_CSV}:8: rejected: not a valid ip value" in result.stdout
    indicators = {o["pattern"]: o for o in stored(data_dir) if o["type"] == "indicator"}
    assert set(indicators) == {
        "[domain-name:value = 'tickets-verify.example.net']",
        "[url:value = 'https://tickets-verify.example.net/pay']",  # defanged in the file, refanged
        "[domain-name:value = 'cdn-tickets.example.org']",
        "[file:hashes.'SHA-256' = '0f343b0931126a20f133d67c2b018a3b5e8e3b8f1d4b7c0a6e5d9f2c1b3a4e5d']",
        "[ipv4-addr:value = '8.8.8.8']",
    }
    for indicator in indicators.values():
        assert indicator["labels"] == ["phishing"] and indicator["confidence"] == 70
        assert indicator["valid_until"].startswith("2099-01-01T00:00:00")
        assert indicator["object_marking_refs"] == ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]
    assert indicators["[ipv4-addr:value = '8.8.8.8']"]["x_kizuna_warninglists"] == ["public-dns-v4"]
    (audited,) = import_reports(data_dir)
    assert audited["sources"][0]["rejected_input"][0]["where"] == f"{IOC_CSV}:8"


def test_a_list_made_by_a_partner_is_released_as_its_producers_agreements_say(sqlite_node: Path,
                                                                             tmp_path: Path) -> None:
    # --producer names who made the list, so an agreement releasing only that producer's objects covers it,
    # and a list imported without one (the node's own, by default) is not.
    kizuna_json(sqlite_node, "orgs", "create", "JPCERT/CC", "--country", "JPN")
    kizuna_json(sqlite_node, "orgs", "create", "KrCERT/CC", "--country", "KOR")
    jp = next(o["id"] for o in kizuna_json(sqlite_node, "orgs", "list")["organisations"] if o["name"] == "JPCERT/CC")
    theirs, ours = tmp_path / "jp-list.csv", tmp_path / "our-list.csv"
    theirs.write_text("type,value\ndomain,jp-list.example.net\n")
    ours.write_text("type,value\ndomain,our-list.example.net\n")
    kizuna_json(sqlite_node, "import", str(theirs), "--collection", "in", "--tlp", "amber", "--producer", "JPCERT/CC")
    kizuna_json(sqlite_node, "import", str(ours), "--collection", "in", "--tlp", "amber")
    made_by = {o["pattern"]: o.get("created_by_ref") for o in stored(sqlite_node) if o["type"] == "indicator"}
    assert made_by == {"[domain-name:value = 'jp-list.example.net']": jp,
                       "[domain-name:value = 'our-list.example.net']": None}
    kizuna_json(sqlite_node, "agreements", "set", "kr-jp-relay", "--partner", "KrCERT/CC", "--max-tlp", "amber",
                "--producers", jp)
    released = kizuna(sqlite_node, "export", "--collection", "in", "--format", "txt", "--type", "domain",
                      "--as-org", "KrCERT/CC").stdout.split()
    assert released == ["jp-list.example.net"]
    unknown = kizuna(sqlite_node, "import", str(theirs), "--collection", "in", "--producer", "Nobody", check=False)
    assert unknown.returncode == 2 and unknown.stderr == ("kizuna import: --producer: no organisation 'Nobody' "
                                                          "(see `kizuna orgs list`)\n")


def test_no_warninglists_flags_nothing_and_the_report_file_holds_everything(sqlite_node: Path,
                                                                            tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    off = kizuna(sqlite_node, "import", str(IOC_CSV), "--collection", "in", "--no-warninglists", "--report",
                 str(report_file), check=False)
    written = json.loads(report_file.read_text())
    assert written["sources"][0]["flagged"] == 0 and written["stored"] == 5
    assert written["sources"][0]["rejected_input"][0]["where"] == f"{IOC_CSV}:8"
    assert off.returncode == 1 and f"{IOC_CSV}:8: rejected" in off.stdout
    chosen = imported_with_rejections(sqlite_node, str(IOC_CSV), "--collection", "in", "--warninglist", "rfc1918")
    assert chosen["sources"][0]["flagged"] == 0  # 8.8.8.8 is on public-dns-v4, not on rfc1918
    unknown = kizuna(sqlite_node, "import", str(IOC_CSV), "--collection", "in", "--warninglist", "no-such-list",
                     check=False)
    assert unknown.returncode == 2 and "no-such-list" in unknown.stderr and len(unknown.stderr.splitlines()) == 1
    near = kizuna(sqlite_node, "import", str(IOC_CSV), "--collection", "in", "--warninglist", "public-dns-4",
                  check=False)
    assert "did you mean 'public-dns-v4'" in near.stderr  # not a Python function to call, as it once said
    # An option's bad value is the option's fault: a usage error before any file is read, not blamed on the file.
    bad = kizuna(sqlite_node, "import", str(IOC_CSV), "--collection", "in", "--valid-until", "2030-13-01", "--json",
                 check=False)
    error = json.loads(bad.stdout)["error"]
    assert bad.returncode == 2 and error["file"] is None and "'--valid-until': '2030-13-01'" in error["message"]


# --- STIX 2.0 and 1.x --------------------------------------------------------------------------


def test_stix20_bundle_is_upgraded_to_21(sqlite_node: Path) -> None:
    report = kizuna_json(sqlite_node, "import", str(STIX20), "--collection", "in")
    assert report["sources"][0]["format"] == "stix20" and report["stored"] == 3
    assert any("labels moved to indicator_types" in w for w in report["sources"][0]["warnings"])
    objects = {o["type"]: o for o in stored(sqlite_node)}
    assert all(o["spec_version"] == "2.1" for o in objects.values())
    assert objects["indicator"]["indicator_types"] == ["malicious-activity"]
    assert objects["malware"]["is_family"] is True


def test_stix1_xml_is_elevated_with_the_elevators_warnings(sqlite_node: Path) -> None:
    report = kizuna_json(sqlite_node, "import", str(STIX1), "--collection", "in")
    (source,) = report["sources"]
    assert source["format"] == "stix1" and report["stored"] >= 1
    assert any(w.startswith("stix2-elevator") for w in source["warnings"])
    (indicator,) = [o for o in stored(sqlite_node) if o["type"] == "indicator"]
    assert indicator["pattern"] == "[url:value = 'http://x4z9arb.cn/4712']"
    # The package dates nothing: its objects take the file's time, not the clock's, so a second import of the
    # same file is all duplicates (it made new versions, and its marking definition was refused as redefined).
    assert indicator["created"].startswith(
        dt.datetime.fromtimestamp(int(STIX1.stat().st_mtime), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    again = kizuna_json(sqlite_node, "import", str(STIX1), "--collection", "in")
    assert (again["stored"], again["duplicates"], again["rejected"]) == (0, report["stored"], 0)


# --- detection of the format, and --format ------------------------------------------------------


def test_format_is_detected_from_content_and_forced_by_option(sqlite_node: Path, tmp_path: Path) -> None:
    disguised = tmp_path / "event.txt"  # a MISP event whatever the name says
    shutil.copy(MISP_EVENT, disguised)
    assert kizuna_json(sqlite_node, "import", str(disguised), "--collection", "in")["sources"][0]["format"] == "misp"
    forced = kizuna(sqlite_node, "import", str(IOC_CSV), "--collection", "in", "--format", "misp", check=False)
    assert_one_line_failure(forced, str(IOC_CSV))
    as_text = imported_with_rejections(sqlite_node, str(IOC_CSV), "--collection", "in", "--format", "ioc-text")
    assert as_text["sources"][0]["format"] == "ioc-text"


def test_a_bare_misp_event_as_pymisp_writes_it_is_detected(sqlite_node: Path, tmp_path: Path) -> None:
    """PyMISP's ``MISPEvent.to_json()`` writes the event without its {"Event": …} wrapper, keys sorted (so its
    first key is "Attribute"), as the CIRCL fixtures are: it is detected as MISP, not refused as empty STIX."""
    from pymisp import MISPEvent

    event = MISPEvent()
    event.load_file(str(MISP_EVENT))
    bare = tmp_path / "bare-event.json"
    bare.write_text(event.to_json(sort_keys=True, indent=2))
    assert bare.read_text().lstrip().startswith('{\n  "Attribute"')
    report = kizuna_json(sqlite_node, "import", str(bare), "--collection", "in")
    assert report["sources"][0]["format"] == "misp" and report["stored"] > 0
    assert EVENT_UUID in {obj["id"].partition("--")[2] for obj in stored(sqlite_node)}


# --- bad input: one line, exit 1, nothing stored ------------------------------------------------


@pytest.mark.parametrize("name,content,where", [
    ("bad-event.json", '{"Event": {"uuid": "6c1f0e2a-4b7d-4f38-9a51-2d0c8e7b9f10", "info": "x", "Attribute": '
     '[{"type": "domain", "value": "a.example.net", "uuid": "9a4e2b61-7c3d-4e58-a1f0-5b6c7d8e9f01"}, '
     '{"type": "ip-dst", "value": "192.0.2.1", "uuid": "not-a-uuid"}]}}', "bad-event.json:1"),
    ("bad.xml", '<?xml version="1.0"?>\n<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1">\n<x>\n'
     '</stix:STIX_Package>\n', "bad.xml:4"),
    ("bad.csv", "type,value\ndomain,a.example.net\ndomain,\xff\xfe\n", "bad.csv:3"),
])
def test_a_malformed_file_fails_in_one_line_and_stores_nothing(data_dir: Path, tmp_path: Path, name: str,
                                                               content: str, where: str) -> None:
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_bytes(content.encode("latin-1"))
    else:
        path.write_text(content)
    result = kizuna(data_dir, "import", str(path), "--collection", "in", check=False)
    assert_one_line_failure(result, where)
    error = json.loads(kizuna(data_dir, "import", str(path), "--collection", "in", "--json", check=False).stdout)
    assert error["error"]["file"].endswith(name)
    assert stored(data_dir) == []


# --- URLs -----------------------------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[str]:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(EXAMPLES))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_import_from_a_url(sqlite_node: Path, http_server: str) -> None:
    report = imported_with_rejections(sqlite_node, f"{http_server}/iocs.csv", "--collection", "in")
    (source,) = report["sources"]
    assert source["source"] == f"{http_server}/iocs.csv" and source["format"] == "ioc-csv"
    assert source["rejected_input"][0]["where"] == f"{http_server}/iocs.csv:8"
    assert report["stored"] == 5
    missing = kizuna(sqlite_node, "import", f"{http_server}/absent.json", "--collection", "in", check=False)
    assert_one_line_failure(missing, "HTTP 404")
    too_big = kizuna(sqlite_node, "import", f"{http_server}/misp-event.json", "--collection", "in",
                     "--max-bytes", "100", check=False)
    assert_one_line_failure(too_big, "--max-bytes 100")


def test_a_list_of_nothing_usable_fails_naming_the_first_rejected_line(sqlite_node: Path, tmp_path: Path) -> None:
    path = tmp_path / "nothing.txt"
    path.write_text("# only typos\n999.1.2.3\nnot an ioc at all!\n")
    result = kizuna(sqlite_node, "import", str(path), "--collection", "in", check=False)
    assert_one_line_failure(result, f"{path}:2")
    assert "nothing usable was imported; 2 rejected" in result.stderr
    (audited,) = import_reports(sqlite_node)  # the report is kept even so
    assert [r["where"] for r in audited["sources"][0]["rejected_input"]] == [f"{path}:2", f"{path}:3"]


def test_file_names_in_a_text_list_never_reach_a_response_policy_zone(sqlite_node: Path, tmp_path: Path) -> None:
    listed = tmp_path / "list.txt"
    listed.write_text("report.pdf\nupdate.exe\nbad-updates.io\n")
    result = kizuna(sqlite_node, "import", str(listed), "--collection", "in", "--json", check=False)
    report = json.loads(result.stdout)
    (source,) = report["sources"]
    assert source["stored"] == 1
    assert [(r["where"], r["reason"]) for r in source["rejected_input"]] == [
        (f"{listed}:1", "'report.pdf' is not a domain: 'pdf' is not a top-level domain"),
        (f"{listed}:2", "'update.exe' is not a domain: 'exe' is not a top-level domain"),
    ]
    zone = kizuna(sqlite_node, "export", "--collection", "in", "--format", "rpz", "-o", "-").stdout
    assert "bad-updates.io CNAME ." in zone
    assert "report.pdf" not in zone and "update.exe" not in zone


# --- MISP records the conversion cannot keep: reported, the rest imported ----------------------------------------


def _misp_event(event_uuid: str, attributes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Event": {"uuid": event_uuid, "info": "newcomer tour", "date": "2026-03-02", "analysis": "2",
                      "threat_level_id": "2", "distribution": "3", "published": True, "timestamp": "1772445600",
                      "Orgc": {"name": "Example CSIRT", "uuid": "3e9b7c51-0a2d-4c8e-b6f4-71d2a9e0c3b5"},
                      "Tag": [{"name": "tlp:green"}], "Attribute": attributes}}


def _misp_attribute(attribute_uuid: str, kind: str, value: str, **more: Any) -> dict[str, Any]:
    return {"uuid": attribute_uuid, "type": kind, "category": "Network activity", "value": value, "to_ids": True,
            "timestamp": "1772445600", **more}


def test_an_attribute_of_an_unknown_misp_type_is_rejected_and_the_rest_of_the_file_imported(
        sqlite_node: Path, tmp_path: Path) -> None:
    unknown = "aaaaaaaa-0000-4000-8000-000000000001"
    path = tmp_path / "misp-multi.json"
    path.write_text(json.dumps({"response": [
        _misp_event("a1a1a1a1-0000-4000-8000-000000000001", [
            _misp_attribute(unknown, "nonsense-type", "whatever"),
            _misp_attribute("aaaaaaaa-0000-4000-8000-000000000002", "domain", "good-a.example.net")]),
        _misp_event("b2b2b2b2-0000-4000-8000-000000000001", [
            _misp_attribute("bbbbbbbb-0000-4000-8000-000000000001", "domain", "good-b.example.net")]),
    ]}, indent=2))
    line = path.read_text()[: path.read_text().index(unknown)].count("\n") + 1
    report = imported_with_rejections(sqlite_node, str(path), "--collection", "in")
    [rejected] = report["sources"][0]["rejected_input"]
    assert rejected["where"] == f"{path}:{line}"
    assert unknown in rejected["reason"] and "unknown MISP type 'nonsense-type'" in rejected["reason"]
    patterns = " ".join(o["pattern"] for o in stored(sqlite_node) if o["type"] == "indicator")
    assert "good-a.example.net" in patterns and "good-b.example.net" in patterns and "whatever" not in patterns
    text = kizuna(sqlite_node, "import", str(path), "--collection", "in", check=False)
    assert f"{path}:{line}: rejected: attribute {unknown}: unknown MISP type 'nonsense-type'" in text.stdout
    assert text.stderr == "kizuna import: 1 input record not converted (listed above)\n"


def test_attributes_and_objects_deleted_in_misp_are_not_imported_and_are_named_as_deleted(
        sqlite_node: Path, tmp_path: Path) -> None:
    """MISP keeps a soft-deleted attribute or object in its exports with ``"deleted": true``; misp-stix converts it
    like any other, so a value its producer withdrew became a live indicator that went out in feeds."""
    deleted, live = "dddddddd-0000-4000-8000-000000000001", "dddddddd-0000-4000-8000-000000000002"
    deleted_object, in_deleted_object = "dddddddd-0000-4000-8000-000000000003", "dddddddd-0000-4000-8000-000000000004"
    event = _misp_event("d1d1d1d1-0000-4000-8000-000000000001", [
        _misp_attribute(deleted, "domain", "withdrawn.example.net", deleted=True),
        _misp_attribute(live, "domain", "live.example.net", deleted=False)])
    event["Event"]["Object"] = [{
        "uuid": deleted_object, "name": "domain-ip", "meta-category": "network", "deleted": True,
        "timestamp": "1772445600", "Attribute": [{**_misp_attribute(in_deleted_object, "domain", "gone.example.net"),
                                                  "object_relation": "domain"}]}]
    path = tmp_path / "misp-deleted.json"
    path.write_text(json.dumps(event, indent=2))
    report = kizuna_json(sqlite_node, "import", str(path), "--collection", "in")
    lost = {loss["ref"]: loss for loss in report["sources"][0]["losses"]}
    assert "deleted in MISP" in lost[deleted]["reason"] and lost[deleted]["value"]["value"] == "withdrawn.example.net"
    assert "deleted in MISP" in lost[deleted_object]["reason"] and live not in lost
    stored_ids = {o["id"].partition("--")[2] for o in stored(sqlite_node)}
    assert live in stored_ids and not {deleted, deleted_object, in_deleted_object} & stored_ids
    feed = tmp_path / "domains.txt"
    kizuna(sqlite_node, "export", "--collection", "in", "--format", "txt", "--type", "domain", "-o", str(feed))
    assert feed.read_text().split() == ["live.example.net"]
    text = kizuna(sqlite_node, "import", str(path), "--collection", "in").stdout
    assert f"{deleted}: attribute lost: deleted in MISP" in text


def test_the_misp_import_names_each_value_it_flags_with_its_attribute_and_list(sqlite_node: Path) -> None:
    """README, "MISP events": the import flags the 8.8.8.8 attribute. It said "1 flagged by warninglists" and named
    nothing: which value, of which attribute, on which list, is what an operator needs to judge the flag."""
    resolver = "4d7b5e94-af60-4b8c-9423-8e9f0a1b2c34"
    report = kizuna_json(sqlite_node, "import", str(MISP_EVENT), "--collection", "in")
    (source,) = report["sources"]
    assert source["flagged"] == 1
    assert source["flagged_values"] == [{"ref": resolver, "value": "8.8.8.8", "lists": ["public-dns-v4"]}]
    text = kizuna(sqlite_node, "import", str(MISP_EVENT), "--collection", "in").stdout
    assert f"  {resolver}: flagged by warninglists (public-dns-v4): 8.8.8.8" in text.splitlines()
    (_, audited) = import_reports(sqlite_node)
    assert audited["sources"][0]["flagged_values"] == source["flagged_values"]
    (csv,) = imported_with_rejections(sqlite_node, str(IOC_CSV), "--collection", "in")["sources"]
    [flagged] = csv["flagged_values"]  # as the CSV import names its flagged values too
    assert (flagged["value"], flagged["lists"]) == ("8.8.8.8", ["public-dns-v4"])
    assert flagged["ref"].startswith("indicator--") and flagged["ref"] in {o["id"] for o in stored(sqlite_node)}
