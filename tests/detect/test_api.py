"""`POST /{api_root}/detect/observations/` on a real `kizuna serve` process, with real tokens and collections."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from kizuna.core.node import Node
from kizuna.detect.engine import DetectionEngine
from kizuna.detect.intel import zeek_intel_indicators
from kizuna.detect.mappings import LogReader, shipped_mappings
from tests.conftest import kizuna_json, start_server

ZEEK = Path(__file__).parent / "fixtures" / "zeek"
URL = "/main/detect/observations/"


class Client:
    """Posts to the served node, the way a sensor would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def post(self, url: str, content: bytes, params: dict[str, Any], headers: dict[str, str]) -> requests.Response:
        return self.session.post(self.base + url, data=content, params=params, headers=headers)
DOMAIN_ID = "domain-name--00000000-0000-4000-8000-000000000001"
OBSERVED_ID = "observed-data--00000000-0000-4000-8000-000000000001"


def _demo_indicators() -> list[dict[str, Any]]:
    return list(zeek_intel_indicators((ZEEK / "demo.intel").read_text("utf-8").splitlines()))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Node, dict[str, str]]]:
    data = tmp_path_factory.mktemp("detect-api") / "node"
    kizuna_json(data, "init", "--org-name", "CERT Example", "--country", "NZL")
    intel = kizuna_json(data, "collections", "create", "--title", "Intel", "--alias", "intel")["id"]
    kizuna_json(data, "collections", "create", "--title", "Sightings", "--alias", "sightings")
    kizuna_json(data, "collections", "create", "--title", "Other", "--alias", "other")
    bundle = data.parent / "intel.json"
    bundle.write_bytes(orjson.dumps({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
                                     "objects": _demo_indicators()}))
    kizuna_json(data, "import", str(bundle), "--collection", intel)
    kizuna_json(data, "orgs", "create", "SOC Partner", "--country", "AUS")
    tokens = {
        "reader": kizuna_json(data, "tokens", "create", "--org", "SOC Partner", "--read", "intel")["token"],
        "writer": kizuna_json(data, "tokens", "create", "--org", "CERT Example", "--read", "intel",
                              "--write", "sightings")["token"],
        "outsider": kizuna_json(data, "tokens", "create", "--org", "SOC Partner", "--read", "other")["token"],
    }
    node = Node.open(data)
    server = start_server(data)
    try:
        yield Client(server.base), node, tokens
    finally:
        server.stop()
        node.close()


def _post(client: Client, token: str | None, body: bytes, **params: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(URL, content=body, params=params, headers=headers)


def _observed(value: str, stamp: str = "2019-12-03T22:45:22Z") -> bytes:
    objects = [
        {"type": "domain-name", "spec_version": "2.1", "id": DOMAIN_ID, "value": value},
        {"type": "observed-data", "spec_version": "2.1", "id": OBSERVED_ID, "created": stamp, "modified": stamp,
         "first_observed": stamp, "last_observed": stamp, "number_observed": 1, "object_refs": [DOMAIN_ID]},
    ]
    return orjson.dumps({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56e", "objects": objects})


def test_observed_data_hit_gives_a_sighting_of_the_readers_organisation(setup: Any) -> None:
    client, node, tokens = setup
    response = _post(client, tokens["reader"], _observed("guyspy.com"))
    assert response.status_code == 200, response.text
    answer = response.json()
    (indicator,) = [i for i in _demo_indicators() if "guyspy.com" in i["pattern"]]
    assert [h["indicator"] for h in answer["hits"]] == [indicator["id"]]
    assert [h["indicator_name"] for h in answer["hits"]] == ["DOMAIN guyspy.com"]
    (sighting,) = answer["sightings"]
    assert sighting["sighting_of_ref"] == indicator["id"]
    assert sighting["observed_data_refs"] == [OBSERVED_ID]
    partner = node.store.get_organisation("SOC Partner")
    assert sighting["where_sighted_refs"] == [partner.id]
    assert _post(client, tokens["reader"], _observed("benign.example")).json()["hits"] == []


def test_log_lines_match_as_kizuna_match_does(setup: Any) -> None:
    client, _node, tokens = setup
    body = b"".join((ZEEK / "json" / name).read_bytes() for name in ("http.log", "files.log", "dns.log"))
    response = _post(client, tokens["reader"], body, format="zeek")
    assert response.status_code == 200, response.text
    answer = response.json()
    engine = DetectionEngine("identity--00000000-0000-4000-8000-000000000000")
    engine.load_indicators(_demo_indicators())
    mappings = shipped_mappings()
    expected = [(a.indicator_id, a.line) for a in engine.run(LogReader(mappings.values()).events(body.splitlines()),
                                                               mappings)]
    assert [(h["indicator"], h["line"]) for h in answer["hits"]] == expected
    name_of = {i["id"]: i["name"] for i in _demo_indicators()}
    assert [h["indicator_name"] for h in answer["hits"]] == [name_of[i] for i, _line in expected]
    assert answer["hit_count"] == len(expected) > 0
    assert answer["lines"] == len(body.splitlines())


def test_a_compressed_body_is_refused_not_read_as_records(setup: Any) -> None:
    # Read as it is, every line of a gzip body was "unparsed" and the answer a 200 with nothing matched.
    client, _node, tokens = setup
    body = gzip.compress((ZEEK / "json" / "dns.log").read_bytes())
    response = client.post(URL, content=body, params={"format": "zeek"},
                            headers={"Authorization": f"Bearer {tokens['reader']}", "Content-Encoding": "gzip"})
    assert response.status_code == 415, response.text
    assert "Content-Encoding 'gzip'" in response.json()["description"]


def test_a_forced_format_that_does_not_fit_is_counted_and_named(setup: Any) -> None:
    client, _node, tokens = setup
    body = (ZEEK / "json" / "dns.log").read_bytes()
    answer = _post(client, tokens["reader"], body, format="ecs").json()  # Zeek records read as ECS
    records = len([line for line in body.splitlines() if line.strip()])
    assert answer["hit_count"] == 0 and answer["unlike_forced_format"] == records > 0
    assert answer["first_unlike"]["line"] == 1 and "ecs" in answer["first_unlike"]["reason"]
    assert _post(client, tokens["reader"], body, format="zeek").json()["unlike_forced_format"] == 0


def test_tokens_match_only_indicators_they_may_read(setup: Any) -> None:
    client, _node, tokens = setup
    answer = _post(client, tokens["outsider"], _observed("guyspy.com")).json()
    assert answer["indicators"]["indicators"] == 0 and answer["hits"] == []
    denied = _post(client, tokens["outsider"], _observed("guyspy.com"), collection="intel")
    assert denied.status_code in (403, 404)
    assert _post(client, None, _observed("guyspy.com")).status_code == 401


def test_bad_requests_are_taxii_errors(setup: Any) -> None:
    client, _node, tokens = setup
    for body, params in [(b"{not json", {}), (b"[]", {"format": "syslog"}), (b"[]", {"colour": "red"})]:
        response = _post(client, tokens["reader"], body, **params)
        assert response.status_code == 400
        assert response.json()["http_status"] == "400"
    # Bundles whose objects are not a list of objects, or that hold none, as a careless client sends them.
    for objects in (b"5", b'"abc"', b'{"a": 1}', b"null", b"[5]", b"[]"):
        for params in ({}, {"format": "stix"}):
            body = b'{"type": "bundle", "id": "bundle--1", "objects": ' + objects + b"}"
            response = _post(client, tokens["reader"], body, **params)
            assert response.status_code == 400, (objects, params, response.text)
            assert response.json()["http_status"] == "400"
    assert _post(client, tokens["reader"], b'{"type": "bundle", "id": "bundle--1"}').status_code == 400
    # A repeated format or store is refused, not read as its last value; collection is repeatable.
    for repeated in ({"format": ["zeek", "ecs"]}, {"store": ["sightings", "other"]}):
        response = client.post(URL, (ZEEK / "json" / "dns.log").read_bytes(), repeated,
                               {"Authorization": f"Bearer {tokens['writer']}"})
        assert response.status_code == 400, response.text
        name = next(iter(repeated))
        assert response.json()["description"] == f"query parameter {name!r} is repeated; give it once"


def test_sightings_are_stored_and_new_indicators_are_picked_up(setup: Any) -> None:
    client, node, tokens = setup
    answer = _post(client, tokens["writer"], _observed("late.example"), store="sightings").json()
    assert answer["hits"] == [] and answer["stored"]["success_count"] == 0
    late = {**_demo_indicators()[0], "id": "indicator--6a1b3a53-7f0e-4f0e-9d8c-3a2f1b0c9d8e",
            "pattern": "[domain-name:value = 'late.example']", "name": "late"}
    node.import_objects(node.find_collection("intel"), [late])
    answer = _post(client, tokens["writer"], _observed("late.example"), store="sightings").json()
    assert [h["indicator"] for h in answer["hits"]] == [late["id"]]
    assert answer["stored"]["success_count"] == 1
    stored = [orjson.loads(b) for b in node.export_objects(node.find_collection("sightings"))]
    assert [s["sighting_of_ref"] for s in stored] == [late["id"]]
    assert _post(client, tokens["reader"], _observed("late.example"), store="sightings").status_code in (403, 404)


# --- formats, bad times, the README example --------------------------------------------------------

SURICATA_DNS = {"timestamp": "2019-12-03T22:45:22.000000+0000", "flow_id": 1, "event_type": "dns",
                "src_ip": "10.0.0.5", "src_port": 5353, "dest_ip": "10.0.0.53", "dest_port": 53, "proto": "UDP",
                "dns": {"type": "query", "id": 1, "rrname": "guyspy.com", "rrtype": "A"}}
ECS_DNS = {"@timestamp": "2019-12-03T22:45:22.000Z", "ecs": {"version": "8.11.0"}, "event": {"category": ["network"]},
           "source": {"ip": "10.0.0.5", "port": 5353}, "destination": {"ip": "10.0.0.53", "port": 53},
           "dns": {"question": {"name": "guyspy.com", "type": "A"}}}


def _lines(*records: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


@pytest.mark.parametrize("params", [{}, {"format": "auto"}], ids=["no-format", "format-auto"])
def test_log_formats_are_detected_from_the_body(setup: Any, params: dict[str, str]) -> None:
    client, _node, tokens = setup
    (guyspy,) = [i["id"] for i in _demo_indicators() if "guyspy.com" in i["pattern"]]
    bodies = {
        "zeek-dns": (ZEEK / "dns.log").read_bytes(),  # Zeek TSV with its header
        "zeek-http": (ZEEK / "json" / "http.log").read_bytes(),  # Zeek JSON lines
        "suricata-dns": _lines({**SURICATA_DNS, "dns": {**SURICATA_DNS["dns"], "rrname": "benign.example"}},
                               SURICATA_DNS),
        "ecs": _lines(ECS_DNS),
    }
    for mapping, body in bodies.items():
        response = _post(client, tokens["reader"], body, **params)
        assert response.status_code == 200, (mapping, response.text)
        answer = response.json()
        assert answer["format"] == "auto" and answer["observations"] > 0
        assert answer["hits"] and {h["source"] for h in answer["hits"]} == {mapping}, mapping
        assert guyspy in {h["indicator"] for h in answer["hits"]} or mapping == "zeek-http"
    # STIX is still recognised without a format.
    assert _post(client, tokens["reader"], _observed("guyspy.com"), **params).json()["format"] == "stix"


def test_a_body_of_no_known_format_is_a_400_under_auto(setup: Any) -> None:
    client, _node, tokens = setup
    response = _post(client, tokens["reader"], b"not a log\n{\"neither\": 1}\n")
    assert response.status_code == 400
    assert "neither STIX observed-data nor log lines" in response.json()["description"]


def test_out_of_range_times_are_bad_lines_not_server_errors(setup: Any) -> None:
    client, _node, tokens = setup
    zeek = {"ts": 1575413122.5, "uid": "C1", "id.orig_h": "10.0.0.5", "id.orig_p": 5353, "id.resp_h": "10.0.0.53",
            "id.resp_p": 53, "proto": "udp", "query": "guyspy.com"}
    cases = [
        ("zeek", _lines(zeek, {**zeek, "ts": 253402318800.0}, {**zeek, "ts": 1e300}, {**zeek, "ts": "NaN"}), 3),
        ("suricata", _lines(SURICATA_DNS, {**SURICATA_DNS, "timestamp": "9999-12-31T23:00:00.000000-0500"}), 1),
        ("ecs", _lines({**ECS_DNS, "@timestamp": "0001-01-01T00:00:00+01:00"}, ECS_DNS), 1),
        ("auto", _lines({**zeek, "ts": 1e300}, SURICATA_DNS, ECS_DNS), 1),
    ]
    for fmt, body, bad in cases:
        response = _post(client, tokens["reader"], body, format=fmt)
        assert response.status_code == 200, (fmt, response.text)
        answer = response.json()
        assert answer["unparsed"] == bad and answer["hit_count"] == answer["lines"] - bad > 0, fmt
        assert all("outside the years 1-9999" in p["reason"] for p in answer["unparsed_lines"]), fmt
    stix = orjson.loads(_observed("guyspy.com"))
    late = {**stix["objects"][1], "id": "observed-data--00000000-0000-4000-8000-000000000002",
            "last_observed": "10000-01-01T00:00:00Z"}
    response = _post(client, tokens["reader"], orjson.dumps({**stix, "objects": [*stix["objects"], late]}))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["hit_count"] == 1 and [p["id"] for p in answer["unparsed_objects"]] == [late["id"]]
