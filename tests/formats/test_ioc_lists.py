"""CSV and text IOC lists in: kinds, refanging, columns, options, rejections, and a real node's ingest."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from kizuna.core.node import Node
from kizuna.detect.compiler import compile_pattern
from kizuna.formats.base import ConversionReport, FormatError
from kizuna.formats.ioc_lists import iter_ioc_list, read_ioc_list
from kizuna.formats.iocs import indicator_id
from kizuna.policy.tlp import TLP2_IDS, TlpLevel
from kizuna.stix.validation import check_object
from tests.formats.helpers import MIXED_CSV, NOW, PLAIN_TXT

EXPECTED_MIXED = {
    "[ipv4-addr:value = '45.33.12.9']",
    "[ipv6-addr:value = '2a03:b0c0:3:d0::1a2b']",
    "[ipv4-addr:value ISSUBSET '185.220.101.0/24']",
    "[domain-name:value = 'update-checker.xyz']",
    "[domain-name:value = 'cdn.update-checker.top']",
    "[url:value = 'http://update-checker.xyz/gate.php?id=7']",
    "[url:value = 'https://files.update-checker.top/a/b%20c.bin']",
    "[email-addr:value = 'billing@invoices-update.com']",
    "[file:hashes.MD5 = '6a1b6fd6e8a3c5b1a8e2f1d4c3b2a190']",
    "[file:hashes.'SHA-1' = '3f786850e387550fdab836ed7e6dc881de23001b']",
    "[file:hashes.'SHA-256' = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08']",
    "[file:hashes.'SHA-512' = 'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318"
    "d2877eec2f63b931bd47417a81a538327af927da3e']",
    "[network-traffic:extensions.'x-ja3'.hash = 'e7eca2baf4458d095b7f45da28c16c34']",
    "[ipv4-addr:value = '8.8.8.8']",
}


def test_csv_every_kind_refanged_with_columns() -> None:
    report = read_ioc_list(MIXED_CSV, now=NOW)
    assert {o["pattern"] for o in report.objects} == EXPECTED_MIXED
    by_name = {o["name"]: o for o in report.objects}
    assert by_name["45.33.12.9"]["description"] == "C2 server"
    assert by_name["45.33.12.9"]["valid_from"] == "2024-03-01T00:00:00.000000Z"
    assert by_name["2a03:b0c0:3:d0::1a2b"]["valid_from"] == "2024-03-01T08:15:00.000000Z"
    assert by_name["http://update-checker.xyz/gate.php?id=7"]["valid_from"] == "2024-03-02T10:30:00.000000Z"
    assert by_name["update-checker.xyz"]["valid_from"] == "2025-06-01T12:00:00.000000Z"  # no first-seen: now
    assert "2 defanged value(s) refanged" in report.warnings
    assert "1 repeated value(s) merged into the first occurrence" in report.warnings
    # the unmapped column is reported once, not silently dropped
    assert [(loss.ref, loss.field) for loss in report.losses] == [(f"{MIXED_CSV}:2", "analyst")]


def test_rejected_lines_have_line_numbers_and_the_rest_is_imported() -> None:
    report = read_ioc_list(MIXED_CSV, "intel.csv", now=NOW)
    rejected = {r.where: r.reason for r in report.rejected}
    assert rejected == {
        "intel.csv:17": "not a valid md5 value",
        "intel.csv:18": "unknown type 'registry'",
        "intel.csv:19": "malformed CSV: unexpected end of data",
        "intel.csv:20": "not a valid ip value",
    }
    assert len(report.objects) == len(EXPECTED_MIXED)


def test_plain_text_with_comments_prose_and_defanged_values() -> None:
    report = read_ioc_list(PLAIN_TXT, now=NOW, warninglists=None)
    assert [o["name"] for o in report.objects] == [
        "45.33.12.11", "update-checker.net", "https://login-microsoft-verify.com/owa/", "198.51.100.77",
        "45.33.12.12", "a3f5c1e2b4d6f8a0c2e4f6a8b0c2d4e6",
    ]
    assert report.objects[3]["description"] == "seen in netflow"
    assert [(r.where, r.reason) for r in report.rejected] == [(f"{PLAIN_TXT}:7", "no IOC recognised")]


def test_a_very_long_line_of_prose_is_searched_in_pieces() -> None:
    """A pasted report that is one 60,000-character line: it was rejected whole ("no IOC recognised")."""
    filler = " ".join(["the campaign continued through the night without change"] * 500)
    line = f"{filler} first hop 203.0.113.45 then {filler} staged at evil-staging.example.org {filler}"
    assert len(line) > 60_000
    report = read_ioc_list([line], "report.txt", now=NOW, warninglists=None)
    assert [o["name"] for o in report.objects] == ["203.0.113.45", "evil-staging.example.org"]
    assert report.rejected == []


PARTNER_MARKING = "marking-definition--11111111-1111-4111-8111-111111111111"


def test_options_become_properties() -> None:
    identity = "identity--8ce3f695-d5a4-4dc8-9e93-a65af453469d"
    report = read_ioc_list(
        ["value", "45.33.12.9"], "x", tlp="amber+strict", markings=[PARTNER_MARKING],
        labels=["c2"], confidence=85, valid_from="2025-01-01", valid_until="2025-12-31T00:00:00Z",
        created_by_ref=identity, indicator_types=["malicious-activity"], now=NOW, warninglists=None,
    )
    (obj,) = report.objects
    assert obj["object_marking_refs"][0] == TLP2_IDS[TlpLevel.AMBER_STRICT]
    assert len(obj["object_marking_refs"]) == 2
    assert obj["labels"] == ["c2"] and obj["confidence"] == 85 and obj["created_by_ref"] == identity
    assert obj["valid_from"] == "2025-01-01T00:00:00.000000Z"
    assert obj["valid_until"] == "2025-12-31T00:00:00.000000Z"
    assert obj["indicator_types"] == ["malicious-activity"]
    assert obj["created"] == obj["modified"] == "2025-06-01T12:00:00.000000Z"


@pytest.mark.parametrize("kwargs", [{"tlp": "purple"}, {"confidence": 101}, {"valid_from": "last week"},
                                    {"created_by_ref": "organisation--1"}, {"markings": ["tlp:red"]}])
def test_bad_options_raise_one_format_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(FormatError):
        read_ioc_list(["45.33.12.9"], "x", **kwargs)  # type: ignore[arg-type]


def test_ids_are_stable_so_a_reimport_updates() -> None:
    first = read_ioc_list(["45.33.12.9", "update-checker.xyz"], "a", now="2025-01-01T00:00:00Z")
    second = read_ioc_list(["update-checker.xyz", "45.33.12.9"], "b", now="2025-02-01T00:00:00Z")
    assert {o["id"] for o in first.objects} == {o["id"] for o in second.objects}
    assert first.objects[0]["id"] == indicator_id("ipv4", "45.33.12.9")
    assert first.objects[0]["modified"] != second.objects[1]["modified"]


def test_binary_stream_and_bad_encoding() -> None:
    report = read_ioc_list(io.BytesIO(b"\xef\xbb\xbfvalue,comment\n45.33.12.9,x\n"), "s.csv", warninglists=None)
    assert [o["name"] for o in report.objects] == ["45.33.12.9"]
    with pytest.raises(FormatError) as caught:
        read_ioc_list(io.BytesIO(b"45.33.12.9\n\xff\xfe\n"), "bad.txt")
    assert caught.value.where == "bad.txt:2"


def test_first_seen_after_valid_until_is_rejected() -> None:
    report = read_ioc_list(["value,first_seen", "45.33.12.9,2026-01-01", "45.33.12.8,2024-01-01"], "f",
                           valid_until="2025-01-01", warninglists=None)
    assert [o["name"] for o in report.objects] == ["45.33.12.8"]
    assert [r.where for r in report.rejected] == ["f:2"]


def test_a_first_seen_outside_the_years_stix_can_write_is_a_rejected_line() -> None:
    """0001-01-01T00:00+01:00 is in year 0 in UTC: it raised OverflowError (an internal error), then gave a
    timestamp no STIX object may carry; now the line is refused with the reason and the rest is read."""
    report = read_ioc_list(["value,first_seen", "45.33.12.9,0001-01-01T00:00:00+01:00",
                            "45.33.12.8,9999-12-31T23:59:59-01:00", "45.33.12.7,2026-01-01"], "f", warninglists=None)
    assert [o["name"] for o in report.objects] == ["45.33.12.7"]
    assert [r.where for r in report.rejected] == ["f:2", "f:3"]
    assert all("outside the years 1 to 9999" in r.reason for r in report.rejected)


def test_patterns_compile_and_objects_validate() -> None:
    report = read_ioc_list(MIXED_CSV, now=NOW, tlp="green", confidence=70)
    for obj in report.objects:
        assert check_object(obj) is None, (check_object(obj), obj)
        compile_pattern(obj["pattern"], allow_fast_path=False)  # the full STIX grammar accepts it
        assert compile_pattern(obj["pattern"]).parsed_fast  # and the matcher takes its IOC fast path


def test_a_real_node_accepts_every_indicator_and_reimport_adds_versions(store_url: str, tmp_path: Path) -> None:
    node = Node.init(tmp_path / "node", store_url=store_url, org_name="NCSC UK", country="GBR")
    try:
        collection = node.create_collection("IOCs")
        identity = node.identity()["id"]
        report = read_ioc_list(MIXED_CSV, tlp="amber", labels=["incident-42"], confidence=80,
                               created_by_ref=identity, now="2025-06-01T12:00:00Z")
        ingest = node.import_objects(collection, report.objects)
        assert ingest.failures == [] and ingest.success_count == len(EXPECTED_MIXED)
        again = read_ioc_list(MIXED_CSV, tlp="amber", created_by_ref=identity, now="2025-06-02T12:00:00Z")
        ingest = node.import_objects(collection, again.objects)
        assert ingest.failures == [] and ingest.success_count == len(EXPECTED_MIXED)
        stored = {}
        for body in node.export_objects(collection):
            obj = orjson.loads(body)
            if obj["type"] == "indicator":
                stored.setdefault(obj["id"], []).append(obj["modified"])
        assert len(stored) == len(EXPECTED_MIXED)  # the same ids: new versions, no copies
        assert all(len(versions) == 2 for versions in stored.values())
    finally:
        node.close()


def test_ids_are_uuid5_of_kind_and_value() -> None:
    from kizuna.formats.iocs import INDICATOR_NAMESPACE

    for kind, value in [("ipv4", "45.33.12.9"), ("domain", "bücher.example"), ("url", "http://a.example/'x")]:
        assert indicator_id(kind, value) == f"indicator--{uuid.uuid5(INDICATOR_NAMESPACE, kind + ':' + value)}"


def test_a_full_width_domain_is_the_domain_itself_in_every_feed() -> None:
    """IDNA maps full-width letters and dots to the name itself: "ＥＶＩＬ.com" is evil.com. Kept as written, it
    was an indicator of its own that the text blocklist wrote full-width and no log line matched."""
    lines = ["type,value", "domain,ＥＶＩＬ.com", "domain,ｅｖｉｌ．ｃｏｍ", "domain,evil.com", "domain,Bücher.Example"]
    report = read_ioc_list(lines, "wide.csv", now=NOW, warninglists=None)
    patterns = sorted({o["pattern"] for o in report.objects if o["type"] == "indicator"})
    assert patterns == ["[domain-name:value = 'bücher.example']", "[domain-name:value = 'evil.com']"]


def test_iter_ioc_list_streams_and_checks_options_at_the_call() -> None:
    def lines() -> Iterator[str]:
        yield "45.33.12.9\n"
        yield "update-checker.xyz\n"
        raise AssertionError("read past what was asked for")

    report = ConversionReport("ioc-list")
    stream = iter_ioc_list(lines(), "s", report=report, warninglists=None)
    assert next(stream)["name"] == "45.33.12.9"
    with pytest.raises(FormatError):
        iter_ioc_list(["45.33.12.9"], "s", report=report, tlp="purple")
    with pytest.raises(FormatError):
        read_ioc_list("/nonexistent/list.csv")


SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
UUID = "5e1c6c3a-1111-4a2b-9c3d-00000000000"
MISP_CSV = "\n".join([
    "uuid,event_id,category,type,value,comment,to_ids,date,object_relation,attribute_tag,object_uuid",
    f"{UUID}1,12,Network activity,domain,tickets-verify.example.net,landing,1,1772445600,,"
    '"tlp:amber,osint:source-type=""blog-post""",',
    f"{UUID}2,12,Network activity,ip-dst,198.51.100.23,,0,1772445600,,,",
    f"{UUID}3,12,Network activity,domain|ip,pay.example.net|198.51.100.24,,1,1772445600,,tlp:green,",
    f"{UUID}4,12,Payload delivery,filename|sha256,a.exe|{SHA},,1,1772445600,,tlp:ex:chr,",
]) + "\n"

def test_a_misp_csv_export_is_read_with_its_tags_dates_and_composite_values() -> None:
    """The CSV a MISP instance exports (columns of its own, dates in seconds since 1970, TLP as attribute tags,
    composite types, to_ids) was refused whole: the first MISP file a MISP shop tries."""
    report = read_ioc_list(io.StringIO(MISP_CSV), "misp.csv", now=NOW, warninglists=None)
    assert report.rejected == []
    by_pattern = {o["pattern"]: o for o in report.objects}
    assert set(by_pattern) == {"[domain-name:value = 'tickets-verify.example.net']",
                               "[domain-name:value = 'pay.example.net']", "[ipv4-addr:value = '198.51.100.24']",
                               f"[file:hashes.'SHA-256' = '{SHA}']"}
    first = by_pattern["[domain-name:value = 'tickets-verify.example.net']"]
    assert first["object_marking_refs"] == [TLP2_IDS[TlpLevel.AMBER]]
    assert first["labels"] == ['osint:source-type="blog-post"'] and first["valid_from"].startswith("2026-03-02T10:00")
    assert by_pattern["[ipv4-addr:value = '198.51.100.24']"]["object_marking_refs"] == [TLP2_IDS[TlpLevel.GREEN]]
    # A tlp: tag of no TLP 2.0 level fails closed, as in MISP event import.
    hashed = next(o for p, o in by_pattern.items() if p.startswith("[file:"))
    assert hashed["object_marking_refs"] == [TLP2_IDS[TlpLevel.RED]]
    # to_ids 0 is context, not an indicator: left out, and said so.
    assert [(loss.ref, loss.field) for loss in report.losses if loss.field == "to_ids"] == [("misp.csv:3", "to_ids")]
    assert all(check_object(o) is None for o in report.objects)


def test_cells_past_the_headers_columns_are_reported_as_lost() -> None:
    # An unquoted comma in a comment splits it: the value still imports, the stray cell is named, not dropped.
    text = "type,value,comment\ndomain,a.example.net,landing page, sent by mail\ndomain,b.example.net,plain\n" \
           "domain,c.example.net,trailing,,\n"
    report = read_ioc_list(io.StringIO(text), "extra.csv", now=NOW, warninglists=None)
    assert report.rejected == [] and len(report.objects) == 3
    assert [(loss.ref, loss.field, loss.value) for loss in report.losses] == [("extra.csv:2", "column 4",
                                                                               " sent by mail")]


def test_a_file_name_is_not_a_domain_in_a_text_list() -> None:
    """A name whose last label is no top-level domain (report.pdf, update.exe) is a file, not a domain: it is
    rejected on its line, never made a domain indicator (a zone would then block it)."""
    lines = ["report.pdf", "update.exe", "evil.io", "shop.example.jp", "ドメイン.コム", "xn--eckwd4c7c.xn--tckwe",
             "c2.onion", "setup.msi # dropped by the loader"]
    report = read_ioc_list(io.StringIO("\n".join(lines) + "\n"), "list.txt", now=NOW)
    assert {o["pattern"] for o in report.objects} == {
        "[domain-name:value = 'evil.io']", "[domain-name:value = 'shop.example.jp']",
        "[domain-name:value = 'ドメイン.コム']", "[domain-name:value = 'xn--eckwd4c7c.xn--tckwe']",
        "[domain-name:value = 'c2.onion']",
    }
    assert [(r.where, r.reason) for r in report.rejected] == [
        ("list.txt:1", "'report.pdf' is not a domain: 'pdf' is not a top-level domain"),
        ("list.txt:2", "'update.exe' is not a domain: 'exe' is not a top-level domain"),
        ("list.txt:8", "'setup.msi' is not a domain: 'msi' is not a top-level domain"),
    ]


def test_a_file_name_typed_as_a_domain_in_a_csv_list_is_rejected() -> None:
    text = "type,value\ndomain,update.exe\ndomain,evil.example.com\nhostname,invoice.docx\n"
    report = read_ioc_list(io.StringIO(text), "list.csv", now=NOW)
    assert [o["pattern"] for o in report.objects] == ["[domain-name:value = 'evil.example.com']"]
    assert [(r.where, r.reason) for r in report.rejected] == [
        ("list.csv:2", "'update.exe' is not a domain: 'exe' is not a top-level domain"),
        ("list.csv:4", "'invoice.docx' is not a domain: 'docx' is not a top-level domain"),
    ]
