"""`kizuna match` as a real process: node collections in and out, following a growing log, observed-data."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from kizuna.detect.intel import zeek_intel_indicators
from tests.conftest import kizuna, kizuna_json

ZEEK = Path(__file__).parent / "fixtures" / "zeek"
LOGS = [str(ZEEK / name) for name in ("dns.log", "http.log", "json/http.log", "json/files.log")]


def _demo_indicators() -> list[dict[str, Any]]:
    return list(zeek_intel_indicators((ZEEK / "demo.intel").read_text("utf-8").splitlines()))


def _write_bundle(path: Path, objects: list[dict[str, Any]]) -> Path:
    path.write_bytes(orjson.dumps({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
                                   "objects": objects}))
    return path


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "node"
    kizuna_json(directory, "init", "--org-name", "CERT Example", "--country", "NZL")
    return directory


def test_match_reads_a_collection_and_stores_sightings_in_another(node_dir: Path, tmp_path: Path) -> None:
    intel = kizuna_json(node_dir, "collections", "create", "--title", "Intel", "--alias", "intel")
    kizuna_json(node_dir, "collections", "create", "--title", "Sightings", "--alias", "sightings")
    indicators = _demo_indicators()
    imported = kizuna_json(node_dir, "import", str(_write_bundle(tmp_path / "intel.json", indicators)),
                           "--collection", intel["id"])
    assert imported["stored"] == len(indicators)

    result = kizuna(node_dir, "match", "--from-collection", "intel", "--collection", "sightings", "--json", *LOGS)
    summary = json.loads(result.stdout)
    assert summary["indicator_load"] == {"indexed": len(indicators)}
    assert summary["hits"] > 0
    assert summary["stored"] == {"success": summary["sightings"], "failure": 0, "failures": []}

    exported = kizuna(node_dir, "export", "--collection", "sightings").stdout
    stored = [o for o in json.loads(exported)["objects"] if o["type"] == "sighting"]
    identity = kizuna_json(node_dir, "status")["identity"]
    assert len(stored) == summary["sightings"]
    assert {s["sighting_of_ref"] for s in stored} <= {i["id"] for i in indicators}
    assert all(s["where_sighted_refs"] == [identity] for s in stored)
    assert sum(s["count"] for s in stored) == summary["hits"]


def test_match_needs_a_node_for_collections(tmp_path: Path) -> None:
    result = kizuna(tmp_path / "no-node", "match", "--collection", "sightings", *LOGS, check=False)
    assert result.returncode != 0
    assert "kizuna init" in result.stderr


_HIT = {"ts": 1575413122.5, "id.orig_h": "10.0.0.5", "id.resp_h": "10.0.0.53", "query": "guyspy.com"}
_MISS = {**_HIT, "query": "example.org"}


def _follow_then(tmp_path: Path, max_lines: int, change: Callable[[Path], None]) -> tuple[int, list[int], str]:
    """Follow a log of a hit and a miss until ``max_lines``; once the follower has reported line 1 (it then
    waits at the end of the file), ``change`` the log. (exit status, later alerts' lines, standard error)."""
    indicators = _write_bundle(tmp_path / "intel.json", _demo_indicators())
    log = tmp_path / "dns.json.log"
    log.write_bytes(orjson.dumps(_HIT) + b"\n" + orjson.dumps(_MISS) + b"\n")
    command = [sys.executable, "-m", "kizuna", "--data", str(tmp_path / "none"), "match", "--indicators",
               str(indicators), "--follow", "--max-lines", str(max_lines), "--idle-timeout", "60", "--alerts", "-",
               str(log)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert json.loads(process.stdout.readline())["line"] == 1  # blocks until the follower reported line 1
        change(log)
        rest, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, [json.loads(a)["line"] for a in rest.decode().splitlines()], errors.decode()


def test_follow_matches_lines_appended_while_running(tmp_path: Path) -> None:
    def append(log: Path) -> None:
        with log.open("ab") as handle:
            handle.write(orjson.dumps(_MISS) + b"\n" + orjson.dumps({**_HIT, "ts": 1575413199.0}) + b"\n")

    status, lines, errors = _follow_then(tmp_path, 4, append)
    assert status == 0, errors
    assert lines == [4]
    assert "4 lines read: 4 events, 2 hits" in errors


@pytest.mark.parametrize("rotation", ["rename", "copytruncate"])
def test_follow_goes_on_reading_a_log_rotated_under_it(tmp_path: Path, rotation: str) -> None:
    # Zeek and logrotate rename the log and start a new one; copytruncate empties it in place. The follower
    # stayed on the renamed file, or past the end of the truncated one, and read nothing more.
    after = orjson.dumps({**_HIT, "ts": 1575413199.0}) + b"\n"  # shorter than what was read: a cut is seen

    def rotate(log: Path) -> None:
        if rotation == "rename":
            log.rename(tmp_path / "dns.json.log.1")
            log.write_bytes(after)
        else:
            with log.open("r+b") as handle:
                handle.truncate(0)
                handle.write(after)

    status, lines, errors = _follow_then(tmp_path, 3, rotate)
    assert status == 0, errors
    assert lines == [3]
    assert "3 lines read: 3 events, 2 hits" in errors


def test_observed_data_sightings_refer_to_the_observed_data(tmp_path: Path) -> None:
    indicators = _write_bundle(tmp_path / "intel.json", _demo_indicators())
    observed: list[dict[str, Any]] = []
    for n, (stamp, value) in enumerate([("2019-12-03T22:45:22Z", "guyspy.com"), ("2019-12-03T22:50:00Z", "a.example")]):
        observed += [
            {"type": "domain-name", "spec_version": "2.1", "id": f"domain-name--0000000{n}-0000-4000-8000-000000000000",
             "value": value},
            {"type": "observed-data", "spec_version": "2.1",
             "id": f"observed-data--0000000{n}-0000-4000-8000-000000000000",
             "created": stamp, "modified": stamp, "first_observed": stamp, "last_observed": stamp,
             "number_observed": 1, "object_refs": [f"domain-name--0000000{n}-0000-4000-8000-000000000000"]},
        ]
    data = _write_bundle(tmp_path / "observed.json", observed)
    out = tmp_path / "sightings.json"
    result = kizuna(tmp_path / "none", "match", "--indicators", str(indicators), "--observed-data", str(data),
                    "-o", str(out), "--json")
    assert json.loads(result.stdout)["hits"] == 1
    (sighting,) = [o for o in json.loads(out.read_text())["objects"] if o["type"] == "sighting"]
    assert sighting["observed_data_refs"] == ["observed-data--00000000-0000-4000-8000-000000000000"]
    assert sighting["first_seen"] == "2019-12-03T22:45:22.000Z"


def test_sigterm_ends_a_follower_as_ctrl_c_does_with_its_sightings_kept(tmp_path: Path) -> None:
    """`kill` of a `match --follow` exited 143 and wrote nothing; it stops the run as Ctrl-C does: the bundle
    written, the summary printed, exit status 0."""
    indicators = _write_bundle(tmp_path / "intel.json", _demo_indicators())
    log, out = tmp_path / "dns.json.log", tmp_path / "hs.json"
    hit = {"ts": 1575413122.5, "id.orig_h": "10.0.0.5", "id.resp_h": "10.0.0.53", "query": "guyspy.com"}
    log.write_bytes(orjson.dumps(hit) + b"\n")
    command = [sys.executable, "-m", "kizuna", "--data", str(tmp_path / "none"), "match", "--indicators",
               str(indicators), "--follow", "--alerts", "-", "-o", str(out), str(log)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert json.loads(process.stdout.readline())["line"] == 1  # the follower is waiting for more
        process.send_signal(signal.SIGTERM)
        _rest, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, errors
    assert "1 lines read: 1 events, 1 hits, 1 sightings" in errors.decode()
    sightings = [o for o in json.loads(out.read_text())["objects"] if o["type"] == "sighting"]
    assert [s["count"] for s in sightings] == [1]
