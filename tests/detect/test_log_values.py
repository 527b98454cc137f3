"""A log's values reach the matcher in the form indicators are stored in: a DNS name in lower case without
the final dot, an IPv6 address compressed (docs/detection.md, "What a mapping produces")."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kizuna.detect.engine import DetectionEngine
from kizuna.detect.mappings import LogReader, shipped_mappings
from tests.conftest import kizuna, kizuna_json

ZEEK = Path(__file__).parent / "fixtures" / "zeek"
ZEEK_TSV_DNS = (ZEEK / "dns.log").read_text("utf-8").splitlines()[:8]


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "node"
    kizuna_json(directory, "init", "--org-name", "CERT Example", "--country", "NZL")
    kizuna_json(directory, "collections", "create", "--title", "Intel", "--alias", "intel")
    return directory


def _hit_lines(node_dir: Path, tmp_path: Path, log: Path, *source: str) -> list[int]:
    alerts = tmp_path / f"{log.stem}.alerts.jsonl"
    summary = json.loads(kizuna(node_dir, *source, str(log), "-o", str(tmp_path / "out.json"),
                                "--alerts", str(alerts), "--json").stdout)
    hits = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert len(hits) == summary["hits"]
    return sorted(h["line"] for h in hits)


def _now() -> float:
    """A log time after the import: an indicator imported from a list is valid from its import on."""
    return time.time() + 1


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _zeek_dns(query: str, orig: str = "192.0.2.1") -> dict[str, Any]:
    return {"ts": _now(), "uid": "C1", "id.orig_h": orig, "id.orig_p": 5353, "id.resp_h": "192.0.2.53",
            "id.resp_p": 53, "proto": "udp", "query": query}


def test_names_and_ipv6_addresses_match_in_any_case_and_form(node_dir: Path, tmp_path: Path) -> None:
    iocs = tmp_path / "iocs.txt"
    iocs.write_text("BAD-Corp-Login.COM.\n2A03:2880:0:0:0:0:0:BAD\n")
    imported = kizuna_json(node_dir, "import", str(iocs), "--format", "ioc-text", "--collection", "intel")
    assert imported["stored"] == 2
    patterns = {o["pattern"] for o in json.loads(kizuna(node_dir, "export", "--collection", "intel").stdout)
                ["objects"] if o["type"] == "indicator"}
    assert patterns == {"[domain-name:value = 'bad-corp-login.com']", "[ipv6-addr:value = '2a03:2880::bad']"}

    records = [
        _zeek_dns("bAd-cOrP-login.com"),  # a resolver's DNS 0x20 case
        _zeek_dns("BAD-Corp-Login.COM."),  # fully qualified
        _zeek_dns("example.org", orig="2A03:2880:0:0:0:0:0:BAD"),  # IPv6 written in full
        _zeek_dns("example.org", orig="2a03:2880::bad"),
        _zeek_dns("bad-corp-login.com.example.org"),  # another name, no hit
        {"timestamp": _iso(_now()), "event_type": "tls", "src_ip": "192.0.2.1",
         "src_port": 50000, "dest_ip": "192.0.2.80", "dest_port": 443, "proto": "TCP",
         "tls": {"sni": "Bad-Corp-Login.com", "version": "TLS 1.3"}},
        {"@timestamp": _iso(_now()), "ecs": {"version": "8.11.0"},
         "source": {"ip": "192.0.2.1"}, "dns": {"question": {"name": "BAD-CORP-LOGIN.COM."}}},
    ]
    log = tmp_path / "mixed.log"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    source = ("match", "--from-collection", "intel")
    assert _hit_lines(node_dir, tmp_path, log, *source) == [1, 2, 3, 4, 6, 7]

    # Zeek TSV rows take the compiled row readers of fast_tsv.py: the same names hit there.
    tsv = tmp_path / "dns.log"
    row = ZEEK_TSV_DNS[-1].split("\t")  # the #types line gives the column count
    cells = [f"{_now():.6f}", "C1", "192.168.33.10", "1030", "4.2.2.3", "53", "udp", "44949",
             "Bad-Corp-Login.COM.", *["-"] * (len(row) - 10)]
    tsv.write_text("\n".join([*ZEEK_TSV_DNS, "\t".join(cells)]) + "\n")
    assert _hit_lines(node_dir, tmp_path, tsv, *source) == [9]


def test_zeek_intel_domains_and_addresses_are_stored_canonical(node_dir: Path, tmp_path: Path) -> None:
    intel = tmp_path / "feed.intel"
    intel.write_text("#fields\tindicator\tindicator_type\tmeta.source\n"
                     "BAD-Corp-Login.COM.\tIntel::DOMAIN\tfeed\n"
                     "2A03:2880:0:0:0:0:0:BAD\tIntel::ADDR\tfeed\n")
    log = tmp_path / "dns.json"
    log.write_text(json.dumps(_zeek_dns("bad-corp-login.com", orig="2a03:2880::bad")) + "\n")
    out = tmp_path / "sightings.json"
    summary = json.loads(kizuna(node_dir, "match", "--zeek-intel", str(intel), str(log), "-o", str(out),
                                "--json").stdout)
    assert summary["hits"] == 2
    patterns = {o["pattern"] for o in json.loads(out.read_text())["objects"] if o["type"] == "indicator"}
    assert patterns == {"[domain-name:value = 'bad-corp-login.com']", "[ipv6-addr:value = '2a03:2880::bad']"}


def _zeek_http(host: str, uri: str) -> dict[str, Any]:
    return {"ts": _now(), "uid": "C2", "id.orig_h": "192.0.2.1", "id.orig_p": 50000, "id.resp_h": "192.0.2.9",
            "id.resp_p": 8080, "trans_depth": 1, "method": "GET", "host": host, "uri": uri}


def test_http_hosts_lose_their_port_and_proxy_requests_give_their_own_url(tmp_path: Path) -> None:
    patterns = {
        "domain": "[domain-name:value = 'evil-host.com']",
        "url": "[url:value = 'http://evil-host.com/dl/payload.exe']",
        "url-port": "[url:value = 'http://evil-host.com:8080/dl/payload.exe']",
    }
    bundle = tmp_path / "intel.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
                                  "objects": [
        {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{n:08d}-0000-4000-8000-000000000000",
         "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z", "name": name,
         "pattern": pattern, "pattern_type": "stix", "valid_from": "2020-01-01T00:00:00Z"}
        for n, (name, pattern) in enumerate(patterns.items())]}))
    names = {f"indicator--{n:08d}-0000-4000-8000-000000000000": name for n, name in enumerate(patterns)}
    records = [
        _zeek_http("evil-host.com:8080", "/dl/payload.exe"),  # domain, url-port
        _zeek_http("Evil-Host.com:80", "/index.html"),  # domain
        _zeek_http("192.0.2.9", "http://evil-host.com/dl/payload.exe"),  # a proxy request: domain, url
        _zeek_http("evil-host.com", "/dl/payload.exe"),  # domain, url
        {"timestamp": _iso(_now()), "event_type": "http", "src_ip": "192.0.2.1", "src_port": 50000,
         "dest_ip": "192.0.2.9", "dest_port": 3128, "proto": "TCP",
         "http": {"hostname": "192.0.2.9", "url": "http://evil-host.com/dl/payload.exe", "http_method": "GET"}},
        {"@timestamp": _iso(_now()), "ecs": {"version": "8.11.0"}, "source": {"ip": "192.0.2.1"},
         "destination": {"domain": "evil-host.com:443"}},
    ]
    log = tmp_path / "http.log"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    alerts = tmp_path / "alerts.jsonl"
    kizuna(tmp_path / "none", "match", "--indicators", str(bundle), str(log), "-o", str(tmp_path / "out.json"),
           "--alerts", str(alerts), "--json")
    hits = sorted((a["line"], names[a["indicator"]]) for a in map(json.loads, alerts.read_text().splitlines()))
    assert hits == [(1, "domain"), (1, "url-port"), (2, "domain"), (3, "domain"), (3, "url"), (4, "domain"),
                    (4, "url"), (5, "domain"), (5, "url"), (6, "domain")]
    # Zeek TSV rows take the compiled row readers of fast_tsv.py, which read the host and uri cells too.
    header = (ZEEK / "http.log").read_text("utf-8").splitlines()[:8]
    width = len(header[-1].split("\t")) - 1
    rows = [[f"{_now():.6f}", "C3", "192.0.2.1", "50000", "192.0.2.9", "3128", "1", "GET", host, uri,
             *["-"] * (width - 10)] for host, uri in (("192.0.2.9", "http://evil-host.com/dl/payload.exe"),
                                                     ("Evil-Host.com:8080", "/"))]
    tsv = tmp_path / "http-tsv.log"
    tsv.write_text("\n".join([*header, *("\t".join(r) for r in rows)]) + "\n")
    kizuna(tmp_path / "none", "match", "--indicators", str(bundle), str(tsv), "-o", str(tmp_path / "out.json"),
           "--alerts", str(alerts), "--json")
    hits = sorted((a["line"], names[a["indicator"]]) for a in map(json.loads, alerts.read_text().splitlines()))
    assert hits == [(9, "domain"), (9, "url"), (10, "domain")]


def _routes(indicators: list[dict[str, Any]], lines: list[str]) -> dict[str, list[Any]]:
    """The alerts of the full path and of the fast path over the same lines."""
    mappings, out = shipped_mappings(), {}
    for route in ("full", "fast"):
        engine = DetectionEngine("identity--00000000-0000-4000-8000-000000000000")
        engine.load_indicators(indicators)
        reader = LogReader(mappings.values())
        out[route] = list(engine.run(reader.events(lines), mappings) if route == "full"
                          else engine.line_matcher(reader).alerts(lines))
    return out


def test_a_request_for_the_server_itself_names_its_host_and_no_url() -> None:
    """`OPTIONS *` asks about the server, not a resource (RFC 9112, 3.2.4, asterisk form): it has no URL, where
    `http://evil-host.com*` was built from it; a target that is no path at all likewise. The host is still named."""
    mappings = shipped_mappings()
    for uri in ("*", "evil"):
        record = {**_zeek_http("evil-host.com", uri), "method": "OPTIONS"}
        mapping = LogReader(mappings.values()).pick(record)
        assert mapping is not None
        built = mapping.to_event(record, 1).build()
        assert built.of_type("url") == [], uri
        assert [o["value"] for o in built.of_type("domain-name")] == ["evil-host.com"], uri
    origin = mapping.to_event({**_zeek_http("evil-host.com", "/a?b"), "method": "GET"}, 2).build()
    assert [o["value"] for o in origin.of_type("url")] == ["http://evil-host.com/a?b"]
    patterns = ["[url:value LIKE '%evil-host.com%']", "[domain-name:value = 'evil-host.com']"]
    indicators = [{"type": "indicator", "id": f"indicator--{n:08d}-0000-4000-8000-000000000000", "pattern": pattern,
                   "pattern_type": "stix"} for n, pattern in enumerate(patterns)]
    lines = [json.dumps({**_zeek_http("evil-host.com", "*"), "method": "OPTIONS"})]
    for route, alerts in _routes(indicators, lines).items():
        assert [a.indicator_id for a in alerts] == [indicators[1]["id"]], route  # the domain, and no URL


def test_a_connect_request_names_its_host_and_no_url(tmp_path: Path) -> None:
    """A CONNECT request's target is the host and port of a tunnel (RFC 9112, authority form), not a path: it
    names the domain, and no URL, which the tunnel's contents would have (`http://evil-host.comevil-host.com:443`
    was built from it). The target stays the flow's request_value."""
    mappings = shipped_mappings()
    patterns = {
        "domain": "[domain-name:value = 'evil-host.com']",
        "any-url": "[url:value LIKE '%evil-host.com%']",
        "target": "[network-traffic:extensions.'http-request-ext'.request_value = 'evil-host.com:443']",
    }
    ids = {f"indicator--{n:08d}-0000-4000-8000-000000000000": name for n, name in enumerate(patterns)}
    indicators = [{"type": "indicator", "id": i, "pattern": patterns[name], "pattern_type": "stix"}
                  for i, name in ids.items()]

    def connect(host: str | None, uri: str) -> dict[str, Any]:
        record = {**_zeek_http(host or "", uri), "method": "CONNECT", "id.resp_p": 3128}
        if host is None:
            del record["host"]
        return record

    records = [
        connect("evil-host.com:443", "evil-host.com:443"),  # 1
        connect(None, "evil-host.com:443"),  # 2: no Host header
        connect("192.0.2.9", "Evil-Host.com:443"),  # 3: a Host header naming the proxy
        {"timestamp": _iso(_now()), "event_type": "http", "src_ip": "192.0.2.1", "src_port": 50000,  # 4
         "dest_ip": "192.0.2.9", "dest_port": 3128, "proto": "TCP",
         "http": {"hostname": "evil-host.com", "url": "evil-host.com:443", "http_method": "CONNECT"}},
        connect("[2001:db8::1]:443", "[2001:db8::1]:443"),  # 5: an address, not a name
    ]
    lines = [json.dumps(r) for r in records]
    for number, record in enumerate(records, 1):
        mapping = LogReader(mappings.values()).pick(record)
        assert mapping is not None
        facts = mapping.to_event(record, number).facts
        assert [f for f in facts if f[0] == "url"] == [], facts
        built = mapping.to_event(record, number).build()
        assert built.of_type("url") == []
    expected = [(1, "domain"), (1, "target"), (2, "domain"), (2, "target"), (3, "domain"), (4, "domain"),
                (4, "target")]
    for route in ("full", "fast"):
        engine = DetectionEngine("identity--00000000-0000-4000-8000-000000000000")
        assert engine.load_indicators(indicators) == {"indexed": 3}
        reader = LogReader(mappings.values())
        alerts = (engine.run(reader.events(lines), mappings) if route == "full"
                  else engine.line_matcher(reader).alerts(lines))
        assert sorted((a.line, ids[a.indicator_id]) for a in alerts) == expected, route

    # A Zeek TSV row is read by the compiled row readers of fast_tsv.py, which call the same getters.
    header = (ZEEK / "http.log").read_text("utf-8").splitlines()[:8]
    width = len(header[-1].split("\t")) - 1
    row = [f"{_now():.6f}", "C4", "192.0.2.1", "50000", "192.0.2.9", "3128", "1", "CONNECT", "evil-host.com:443",
           "evil-host.com:443", *["-"] * (width - 10)]
    tsv = [*header, "\t".join(row)]
    for route, alerts in _routes(indicators, tsv).items():
        assert sorted((a.line, ids[a.indicator_id]) for a in alerts) == [(9, "domain"), (9, "target")], route
