"""`POST /{api_root}/detect/observations/` on a real `kizuna serve` process, with real tokens and collections."""

from __future__ import annotations

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

    def post(self, url: str, content: bytes, params: dict[str, str], headers: dict[str, str]) -> requests.Response:
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
    assert answer["hit_count"] == len(expected) > 0
    assert answer["lines"] == len(body.splitlines())


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
