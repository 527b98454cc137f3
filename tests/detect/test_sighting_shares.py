"""Sightings stored by matching add up across inputs and do not count one input twice
(core/sighting_shares.py, store/sighting_inputs.py): over the CLI, over HTTP, and for observed-data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from kizuna.detect.intel import zeek_intel_indicators
from kizuna.detect.sightings import FILE_WITNESS_BYTES
from tests.conftest import ServerProcess, kizuna, kizuna_json, start_server

ZEEK = Path(__file__).parent / "fixtures" / "zeek"
HOUR = 1575410400  # 2019-12-03T22:00:00Z, the start of a sighting window


def _dns(path: Path, *seconds: float) -> Path:
    """A Zeek JSON DNS log with one query for guyspy.com (on the demo intel) at each of ``seconds`` past HOUR."""
    path.write_text("".join(json.dumps({
        "ts": HOUR + s, "uid": f"C{n}", "id.orig_h": "10.0.0.5", "id.orig_p": 5353, "id.resp_h": "10.0.0.53",
        "id.resp_p": 53, "proto": "udp", "query": "guyspy.com"}) + "\n" for n, s in enumerate(seconds)))
    return path


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "node"
    kizuna_json(directory, "init", "--org-name", "CERT Example", "--country", "NZL")
    for alias in ("intel", "seen"):
        kizuna_json(directory, "collections", "create", "--title", alias, "--alias", alias)
    intel = tmp_path / "intel.json"
    intel.write_bytes(orjson.dumps({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
                                    "objects": list(zeek_intel_indicators(
                                        (ZEEK / "demo.intel").read_text("utf-8").splitlines()))}))
    kizuna_json(directory, "import", str(intel), "--collection", "intel")
    return directory


def _versions(node_dir: Path) -> list[dict[str, Any]]:
    """Every stored version of the one sighting in `seen`, oldest first."""
    listed = kizuna_json(node_dir, "objects", "list", "-c", "seen", "--type", "sighting")["objects"]
    (sighting_id,) = {o["id"] for o in listed}
    shown = kizuna_json(node_dir, "objects", "versions", "-c", "seen", sighting_id)
    return [kizuna_json(node_dir, "objects", "show", "-c", "seen", sighting_id, "--version", v)["objects"][0]
            for v in shown["versions"]]


def test_two_logs_add_up_and_a_log_matched_again_counts_once(node_dir: Path, tmp_path: Path) -> None:
    first = _dns(tmp_path / "a.log", 100, 200)
    second = _dns(tmp_path / "b.log", 50, 300, 400)

    def match(*logs: Path) -> dict[str, Any]:
        return kizuna_json(node_dir, "match", "--from-collection", "intel", "--collection", "seen", *map(str, logs))

    assert match(first)["stored"]["success"] == 1
    assert match(second)["stored"]["success"] == 1
    assert match(first)["stored"]["success"] == 0  # its share is stored already: no new version
    versions = _versions(node_dir)
    latest = versions[-1]
    # Both files' hits: 5, from the earliest of either to the latest of either.
    assert (latest["count"], latest["first_seen"], latest["last_seen"]) == (
        5, "2019-12-03T22:00:50.000Z", "2019-12-03T22:06:40.000Z")
    assert len(versions) == 2 and len({v["created"] for v in versions}) == 1  # STIX 2.1, 3.2: created is kept
    assert versions[0]["modified"] < latest["modified"]
    # Standard input is an input too, named by what it held: piped twice, counted once.
    for _ in range(2):
        piped = kizuna(node_dir, "match", "--from-collection", "intel", "--collection", "seen", "--json", "-",
                       input=_dns(tmp_path / "c.log", 500).read_bytes())
        assert piped.returncode == 0
    assert _versions(node_dir)[-1]["count"] == 6


def test_a_grown_log_replaces_its_share_and_a_rotated_one_adds(node_dir: Path, tmp_path: Path) -> None:
    log = _dns(tmp_path / "dns.log", *range(10, 16))  # six queries: longer than the bytes that name the file
    assert log.stat().st_size > FILE_WITNESS_BYTES

    def count(*options: str) -> int:
        kizuna_json(node_dir, "match", "--from-collection", "intel", "--collection", "seen", *options, str(log))
        return int(_versions(node_dir)[-1]["count"])

    # Followed until it stopped growing: its share is what the follower read.
    assert count("--follow", "--idle-timeout", "0.2") == 6
    # Appended to since, and matched again from its start: the new reading covers the old one.
    with log.open("a", encoding="utf-8") as handle:
        handle.write(_dns(tmp_path / "more.log", 20, 21).read_text("utf-8"))
    assert count() == 8
    assert count() == 8  # unchanged: nothing new
    # Rotated: the old file moves away and a new one takes the path; the new one's hits add.
    log.rename(tmp_path / "dns.log.1")
    _dns(log, *range(30, 36))
    assert count() == 14
    # Rewritten in place from its first byte (same inode): another file, its hits add too.
    with log.open("r+b") as handle:
        handle.write(_dns(tmp_path / "other.log", *range(40, 46)).read_bytes())
    assert count() == 20


def test_observed_data_gives_its_span_and_its_number_observed(node_dir: Path, tmp_path: Path) -> None:
    objects = [
        {"type": "domain-name", "spec_version": "2.1", "id": "domain-name--00000000-0000-4000-8000-000000000001",
         "value": "guyspy.com"},
        {"type": "observed-data", "spec_version": "2.1", "id": "observed-data--00000000-0000-4000-8000-000000000001",
         "created": "2019-12-03T23:00:00Z", "modified": "2019-12-03T23:00:00Z",
         "first_observed": "2019-12-03T22:00:00Z", "last_observed": "2019-12-03T22:50:00Z", "number_observed": 5,
         "object_refs": ["domain-name--00000000-0000-4000-8000-000000000001"]},
    ]
    observed = tmp_path / "observed.json"
    observed.write_bytes(orjson.dumps(objects))
    kizuna_json(node_dir, "match", "--from-collection", "intel", "--collection", "seen", "--observed-data",
                str(observed))
    latest = _versions(node_dir)[-1]
    assert (latest["count"], latest["first_seen"], latest["last_seen"]) == (
        5, "2019-12-03T22:00:00.000Z", "2019-12-03T22:50:00.000Z")


def test_bodies_posted_to_the_matcher_add_up_and_a_repeated_body_counts_once(node_dir: Path, tmp_path: Path) -> None:
    token = kizuna_json(node_dir, "tokens", "create", "--org", "CERT Example", "--read", "intel",
                        "--write", "seen")["token"]
    server: ServerProcess = start_server(node_dir)
    try:
        url = f"{server.base}/main/detect/observations/?collection=intel&store=seen"
        headers = {"Authorization": f"Bearer {token}"}
        one, two = _dns(tmp_path / "one.log", 10).read_bytes(), _dns(tmp_path / "two.log", 20, 30).read_bytes()
        for body in (one, two, one):
            answer = requests.post(url, data=body, headers=headers, timeout=30)
            assert answer.status_code == 200, answer.text
    finally:
        server.stop()
    latest = _versions(node_dir)[-1]
    assert (latest["count"], latest["first_seen"], latest["last_seen"]) == (
        3, "2019-12-03T22:00:10.000Z", "2019-12-03T22:00:30.000Z")
    assert len(_versions(node_dir)) == 2
