"""schemathesis against a live ``kizuna serve``: the OpenAPI document is the oracle.

One node per backend (SQLite, then PostgreSQL) for the module, a token that may read and write the
collection, a few objects in it.
Every operation except the console's HTML pages gets a bounded number of generated requests
(parameters aimed at the real API root and collection half the time, so the generated filters
reach the store and not only the 404 path). For each: no 5xx, the status, content type, headers
and body match the document, a request the document allows is not refused with a 4xx other than
the three docs/hostile-input.md names (schemathesis' ST202); and the same request sent with an
``Accept`` that excludes TAXII JSON gets 406 as a TAXII error object from every TAXII, detection
and federation endpoint.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.openapi.checks import RejectedPositiveData

from tests.conftest import BACKENDS, TAXII, ServerProcess, create_pg_database, kizuna_json, start_server

#: Examples per operation: ~18 operations × this stays under ~30 s of requests on a shared machine.
EXAMPLES = int(os.environ.get("KIZUNA_SCHEMATHESIS_EXAMPLES", "6"))
NEGOTIATED_TAGS = {"taxii", "detect", "federation"}
#: How the node refuses a body of the detection API that nothing in can be matched (detect/api.py): not JSON, or
#: no STIX object in it, where STIX is asked for, or, by default (format=auto), nothing that reads as observed-data
#: or as a log line of a known format. The document cannot say which bodies those are.
UNREADABLE_BODY = ("the body is neither STIX observed-data nor log lines of a known format", "the body is not JSON",
                   "the body holds no STIX object to match", "observed-data must be sent as JSON objects",
                   "a bundle's objects must be a list of JSON objects", "observed-data could not be matched")


def _documented_rejection(case: Any, response: Any) -> bool:
    """Whether a 400 to a request the document allows is one of the three docs/hostile-input.md names: a detection
    body nothing in can be matched, a `next` this node did not issue (core/cursor.py), and more hashes and
    videos together than the matcher takes in one request."""
    if response.status_code != 400:
        return False
    description = str(response.json().get("description", ""))
    if case.operation.path == "/{api_root}/detect/observations/":
        return description.startswith(UNREADABLE_BODY)
    if case.operation.path == "/{api_root}/hashes/match":
        return description.startswith("at most 10000 hashes and videos per request")
    return "next" in (case.query or {}) and description.startswith("'next' ")


def positive_data_acceptance_but_documented(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' positive_data_acceptance (ST202, "schema-valid request rejected", which a hand run of
    `schemathesis run` applies), letting through only the three rejections the guide documents."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if _documented_rejection(case, response):
            return None
        raise


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, positive_data_acceptance_but_documented]


class Live:
    def __init__(self, server: ServerProcess, token: str, collection: str) -> None:
        self.server, self.token, self.collection = server, token, collection


@pytest.fixture(scope="module", params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A node on SQLite, then one on PostgreSQL: the same contract must hold on both stores (filters,
    paging and errors reach different SQL)."""
    data = tmp_path_factory.mktemp("schemathesis") / "node"
    database = create_pg_database() if request.param == "postgresql" else None
    kizuna_json(data, "init", "--org-name", "Home", "--country", "GBR",
                *(["--store", database.url] if database else []))
    collection = kizuna_json(data, "collections", "create", "--title", "Fuzzed", "--alias", "fuzzed")["id"]
    token = kizuna_json(data, "tokens", "create", "--org", "Home", "--read", collection,
                        "--write", collection)["token"]
    server = start_server(data, sync=False)
    indicator = {"type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                 "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
                 "pattern": "[ipv4-addr:value = '198.51.100.7']", "pattern_type": "stix",
                 "valid_from": "2026-01-01T00:00:00Z"}
    posted = requests.post(f"{server.base}/main/collections/{collection}/objects/",
                           json={"objects": [indicator]}, timeout=30,
                           headers={"Authorization": f"Bearer {token}", "Accept": TAXII, "Content-Type": TAXII})
    assert posted.status_code == 202, posted.text
    try:
        yield Live(server, token, collection)
    finally:
        server.stop()
        if database is not None:
            database.drop()


def _aim(case: Any, live: Live) -> None:
    """Point half the cases at the real API root and collection (chosen by the case's id, so a
    failing case replays the same way)."""
    if "api_root" in (case.path_parameters or {}) and zlib.crc32(str(case.id).encode()) % 2 == 0:
        case.path_parameters["api_root"] = "main"
        if "collection" in case.path_parameters:
            case.path_parameters["collection"] = live.collection


def _exercise(case: Any, live: Live) -> None:
    _aim(case, live)
    headers = {"Authorization": f"Bearer {live.token}", "Accept": TAXII}
    case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
    if NEGOTIATED_TAGS & set(case.operation.tags or []):
        refused = case.call(headers={**headers, "Accept": "text/html"}, timeout=30)
        assert refused.status_code == 406, (case.as_curl_command(), refused.status_code, refused.text[:300])
        assert refused.headers["content-type"] == [TAXII]
        assert refused.json()["http_status"] == "406"


def _operations(live: Live) -> list[Any]:
    api = schemathesis.openapi.from_url(live.server.base + "/openapi.json").exclude(tag="console")
    return [result.ok() for result in api.get_all_operations()]


def test_the_live_node_keeps_its_openapi_contract(live: Live) -> None:
    # schemathesis' own pytest plugin does not run under pytest 9, so each operation's strategy is
    # driven by hypothesis directly: the same generation and the same checks.
    operations = _operations(live)
    assert len(operations) >= 16
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            _exercise(case, live)

        run()


def test_a_method_a_resource_lacks_is_a_405_error_object_naming_the_methods_it_has(live: Live) -> None:
    """Found by schemathesis: the 405 came without Allow (RFC 9110 §15.5.6)."""
    base = live.server.base
    for url, allowed in [(f"{base}/taxii2/", {"GET"}), (f"{base}/main/collections/{live.collection}/objects/",
                                                        {"GET", "POST"}), (f"{base}/healthz", {"GET"})]:
        answer = requests.request("TRACE", url, headers={"Accept": TAXII}, timeout=10)
        assert answer.status_code == 405
        assert answer.json()["http_status"] == "405"
        assert allowed <= {m.strip() for m in answer.headers["allow"].split(",")}


def test_a_tombstone_position_beyond_64_bits_is_refused(live: Live) -> None:
    """Found by schemathesis: a 19-digit position above 2**63-1 was accepted and echoed back."""
    url = f"{live.server.base}/main/collections/{live.collection}/tombstones/"
    headers = {"Authorization": f"Bearer {live.token}", "Accept": TAXII}
    for name in ("deleted_after", "withdrawn_after"):
        answer = requests.get(url, params={name: str(2**63)}, headers=headers, timeout=10)
        assert answer.status_code == 400, answer.text
        assert requests.get(url, params={name: str(2**63 - 1)}, headers=headers, timeout=10).status_code == 200


def test_an_indicator_with_an_empty_pattern_is_a_failure_in_the_status_not_a_500(live: Live) -> None:
    """Found by fuzzing the pattern validator: stix2patterns raises on an empty string."""
    empty = {"type": "indicator", "spec_version": "2.1", "id": "indicator--0c7b5b88-8ff7-4a4d-aa9c-feb398cd0061",
             "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z", "pattern": "",
             "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"}
    answer = requests.post(f"{live.server.base}/main/collections/{live.collection}/objects/",
                           json={"objects": [empty]}, timeout=30,
                           headers={"Authorization": f"Bearer {live.token}", "Accept": TAXII, "Content-Type": TAXII})
    assert answer.status_code == 202, answer.text
    status = answer.json()
    assert status["failure_count"] == 1 and "pattern is empty" in status["failures"][0]["message"]


def test_a_zeek_header_with_a_broken_separator_is_a_400_naming_it_not_a_500(live: Live) -> None:
    """Found by fuzzing the log reader: '#separator \\x' cut short raised UnicodeDecodeError."""
    body = b"#separator \\x\n#fields\tts\tquery\n1767225600.0\tevil.example.net\n"
    answer = requests.post(f"{live.server.base}/main/detect/observations/", data=body, timeout=30,
                           headers={"Authorization": f"Bearer {live.token}", "Accept": TAXII,
                                    "Content-Type": "text/plain"})
    # Nothing else in the body is readable without the separator, so the whole body is refused.
    assert answer.status_code == 400, answer.text
    assert "is not a usable separator" in answer.json()["description"]


def test_a_yara_pattern_with_a_nul_is_a_failure_in_the_status_not_a_500(live: Live) -> None:
    """Found by fuzzing the YARA rule check: yara-python raises ValueError on a NUL in the source."""
    rule = {"type": "indicator", "spec_version": "2.1", "id": "indicator--3f0b8d44-98a6-4f4e-8f5c-2b1e7d9c6a01",
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
            "pattern": "rule kizuna_nul { condition: true }\u0000", "pattern_type": "yara",
            "valid_from": "2026-01-01T00:00:00Z"}
    answer = requests.post(f"{live.server.base}/main/collections/{live.collection}/objects/",
                           json={"objects": [rule]}, timeout=30,
                           headers={"Authorization": f"Bearer {live.token}", "Accept": TAXII, "Content-Type": TAXII})
    assert answer.status_code == 202, answer.text
    status = answer.json()
    assert status["failure_count"] == 1 and "NUL character" in status["failures"][0]["message"]


def test_the_document_allows_the_timestamps_and_lists_the_node_takes_and_no_other(live: Live) -> None:
    """Found by a hand run of schemathesis (ST202): the document let through days no calendar has (0510-11-31),
    repeated values in match[type] and match[id], and type names with a double hyphen, all refused with 400."""
    from jsonschema import Draft202012Validator

    from kizuna.taxii.openapi import openapi_document

    operation = openapi_document()["paths"]["/{api_root}/collections/{collection}/objects/"]["get"]
    schemas = {parameter["name"]: parameter["schema"] for parameter in operation["parameters"]}
    url = f"{live.server.base}/main/collections/{live.collection}/objects/"
    headers = {"Authorization": f"Bearer {live.token}", "Accept": TAXII}
    stamps = ["0510-11-31T20:03:54Z", "2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
              "2024-02-29T23:59:59.999999Z", "2000-02-29T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T00:00:00.5Z"]
    for stamp in stamps:
        allowed = Draft202012Validator(schemas["added_after"]).is_valid(stamp)
        status = requests.get(url, params={"added_after": stamp}, headers=headers, timeout=10).status_code
        assert (status == 200) == allowed, (stamp, status, allowed)
    uuid = "8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"
    listed = {"match[type]": [["indicator", "indicator"], ["x-a--b"], ["x-a-b", "malware"], ["ab"]],
              "match[id]": [[f"indicator--{uuid}"] * 2, [f"x--y--{uuid}"], [f"indicator--{uuid}", f"x-y--{uuid}"]]}
    for name, values in listed.items():
        for items in values:
            allowed = Draft202012Validator(schemas[name]).is_valid(items)
            status = requests.get(url, params={name: ",".join(items)}, headers=headers, timeout=10).status_code
            assert (status == 200) == allowed, (name, items, status, allowed)
