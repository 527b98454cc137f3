"""`kizuna match --yara`: real rules written for these tests, real files, the real command.

Alerts name file, rule and indicator; sightings aggregate per indicator; two producers' rules of one
name do not clash; a missing file is one line and the rest is scanned; stored YARA indicators of a
node collection (SQLite and PostgreSQL) are scanned with and the sightings stored back."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kizuna, kizuna_json, run_on_a_terminal

ROOT = Path(__file__).resolve().parents[2]
STAMP = "2026-01-01T00:00:00.000Z"
PRODUCER_A = "identity--6a1f0c3e-2f4b-4e1a-9c8d-1b2a3c4d5e01"
PRODUCER_B = "identity--6a1f0c3e-2f4b-4e1a-9c8d-1b2a3c4d5e02"

# Both producers call their rule `loader`: each indicator is its own namespace, so both compile and hit.
RULE_A = 'rule loader : dropper\n{\n    strings:\n        $m = "KZ-LOADER-ALPHA"\n    condition:\n        $m\n}\n'
RULE_B = ('rule loader\n{\n    strings:\n        $mz = { 4D 5A }\n        $s = "beacon.example" nocase\n'
          "    condition:\n        $mz at 0 and $s\n}\n")
BROKEN = 'rule broken\n{\n    condition:\n        $missing\n}\n'


def _identity(ref: str, name: str) -> dict[str, Any]:
    return {"type": "identity", "spec_version": "2.1", "id": ref, "created": STAMP, "modified": STAMP,
            "name": name, "identity_class": "organization"}


def _indicator(number: int, pattern: str, producer: str, pattern_type: str = "yara") -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{number:08d}-1111-4000-8000-000000000000",
            "created": STAMP, "modified": STAMP, "valid_from": STAMP, "created_by_ref": producer,
            "name": f"rule {number}", "pattern_type": pattern_type, "pattern": pattern}


A = _indicator(1, RULE_A, PRODUCER_A)
B = _indicator(2, RULE_B, PRODUCER_B)
STIX = _indicator(3, "[ipv4-addr:value = '10.0.0.1']", PRODUCER_A, "stix")


def _indicators(tmp_path: Path, *extra: dict[str, Any]) -> Path:
    path = tmp_path / "indicators.json"
    objects = [_identity(PRODUCER_A, "Producer A"), _identity(PRODUCER_B, "Producer B"), A, B, STIX, *extra]
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--0d9c1c9e-0000-4000-8000-000000000001",
                                "objects": objects}))
    return path


def _files(tmp_path: Path) -> Path:
    root = tmp_path / "scan"
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "notes.txt").write_text("the marker KZ-LOADER-ALPHA is in this text\n")
    header = b"MZ\x90\x00" + b"\x00" * 60
    (root / "nested" / "sample.exe").write_bytes(header + b"call BEACON.example now KZ-LOADER-ALPHA")
    (root / "nested" / "deeper" / "clean.bin").write_bytes(b"MZ nothing to see here")
    (root / "nested" / "deeper" / "late-mz.bin").write_bytes(b"xxMZ beacon.example")  # MZ not at 0: no hit
    return root


def test_alerts_name_file_rule_and_indicator_and_sightings_aggregate(tmp_path: Path) -> None:
    root = _files(tmp_path)
    out, alerts = tmp_path / "sightings.json", tmp_path / "alerts.jsonl"
    summary = kizuna_json(tmp_path / "none", "match", "--yara", "--indicators", str(_indicators(tmp_path)),
                          str(root), "-o", str(out), "--alerts", str(alerts))
    hits = [json.loads(line) for line in alerts.read_text().splitlines()]
    notes, sample = str(root / "notes.txt"), str(root / "nested" / "sample.exe")
    assert sorted((h["file"], h["rule"], h["indicator"]) for h in hits) == sorted([
        (notes, "loader", A["id"]), (sample, "loader", A["id"]), (sample, "loader", B["id"])])
    assert {(h["indicator"], h["indicator_name"]) for h in hits} == {(A["id"], "rule 1"), (B["id"], "rule 2")}
    for hit in hits:
        assert hit["source"] == "yara" and hit["line"] is None
        digest = hashlib.sha256(Path(hit["file"]).read_bytes()).hexdigest()
        assert {"type": "file", "path": "hashes.'SHA-256'", "value": digest} in hit["observables"]
    assert summary["files"] == 4 and summary["hits"] == 3 and summary["sightings"] == 2
    assert summary["indicators"] == {"yara": 2, "invalid": 0}
    assert summary["indicator_load"] == {"yara": 2, "not-yara": 1} and summary["unscanned"] == []

    bundle = json.loads(out.read_text())
    objects = {o["id"]: o for o in bundle["objects"]}
    sightings = {o["sighting_of_ref"]: o for o in bundle["objects"] if o["type"] == "sighting"}
    assert (sightings[A["id"]]["count"], sightings[B["id"]]["count"]) == (2, 1)
    # Self-contained: the indicators, their producers and the sighting identity are all in the bundle.
    assert {A["id"], B["id"], PRODUCER_A, PRODUCER_B, sightings[A["id"]]["where_sighted_refs"][0]} <= set(objects)
    assert summary["bundle_missing"] == {}


def test_a_missing_file_is_one_line_and_the_rest_is_scanned(tmp_path: Path) -> None:
    root = _files(tmp_path)
    missing, out = tmp_path / "gone.bin", tmp_path / "sightings.json"
    result = kizuna(tmp_path / "none", "match", "--yara", "--indicators", str(_indicators(tmp_path)),
                    str(missing), str(root / "notes.txt"), "-o", str(out), "--json", check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"kizuna match: could not scan {missing}: does not exist"]
    summary = json.loads(result.stdout)
    assert summary["files"] == 1 and summary["hits"] == 1
    assert summary["unscanned"] == [{"file": str(missing), "reason": "does not exist"}]
    assert [o["sighting_of_ref"] for o in json.loads(out.read_text())["objects"] if o["type"] == "sighting"] \
        == [A["id"]]


def test_nothing_scannable_fails_whole_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "sightings.json"
    result = kizuna(tmp_path / "none", "match", "--yara", "--indicators", str(_indicators(tmp_path)),
                    str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out), check=False)
    assert result.returncode != 0 and not out.exists()
    assert result.stderr.splitlines() == [
        f"kizuna match: no file could be scanned (2 could not be read; first: {tmp_path / 'a'}: does not exist)"]


def test_a_broken_rule_is_left_out_with_its_reason_and_the_others_scan(tmp_path: Path) -> None:
    root = _files(tmp_path)
    broken = _indicator(4, BROKEN, PRODUCER_A)
    summary = kizuna_json(tmp_path / "none", "match", "--yara", "--indicators",
                          str(_indicators(tmp_path, broken)), str(root), "-o", str(tmp_path / "s.json"))
    assert summary["invalid_rules"] == {broken["id"]: 'line 5: undefined string "$missing"'}
    assert summary["indicators"] == {"yara": 2, "invalid": 1} and summary["hits"] == 3
    # On the screen the rule left out is named by its indicator's name beside the id.
    shown = kizuna(tmp_path / "none", "match", "--yara", "--indicators", str(_indicators(tmp_path, broken)),
                   str(root), "-o", str(tmp_path / "s.json"))
    assert f"  rule of 'rule 4' ({broken['id']}) left out: line 5: undefined string \"$missing\"" in \
        shown.stderr.splitlines()

    only_broken = tmp_path / "broken.json"
    only_broken.write_text(json.dumps([broken, STIX]))
    result = kizuna(tmp_path / "none", "match", "--yara", "--indicators", str(only_broken), str(root), "--json",
                    check=False)
    assert result.returncode != 0 and result.stderr == ""
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "no-usable-indicators"
    assert error["message"] == "none of the 2 indicators is a usable YARA rule (1 invalid, 1 not-yara)"


@pytest.mark.parametrize("clash", [["--follow"], ["--observed-data"], ["--mapping", "zeek-dns"]])
def test_options_of_log_matching_are_refused_with_yara(tmp_path: Path, clash: list[str]) -> None:
    result = kizuna(tmp_path / "none", "match", "--yara", *clash, "--indicators", str(_indicators(tmp_path)),
                    str(tmp_path), check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"kizuna match: --yara scans files; it does not go with {clash[0]}"]


def test_stored_yara_indicators_scan_and_the_sightings_are_stored_back(tmp_path: Path, store_url: str) -> None:
    data_dir = tmp_path / "node"
    kizuna_json(data_dir, "init", "--org-name", "NCSC UK", "--country", "GBR", "--store", store_url)
    kizuna_json(data_dir, "collections", "create", "--title", "Rules", "--alias", "rules")
    kizuna_json(data_dir, "import", str(_indicators(tmp_path)), "--collection", "rules")
    root = _files(tmp_path)
    summary = kizuna_json(data_dir, "match", "--yara", "--from-collection", "rules", str(root),
                          "--collection", "rules")
    assert summary["hits"] == 3 and summary["stored"] == {"success": 2, "failure": 0, "failures": []}
    listed = kizuna_json(data_dir, "objects", "list", "--collection", "rules", "--type", "sighting")["objects"]
    node_identity = kizuna_json(data_dir, "status")["identity"]
    assert sorted(s["sighting_of_ref"] for s in listed) == sorted([A["id"], B["id"]])
    assert {s["where_sighted_refs"][0] for s in listed} == {node_identity}


def test_a_yara_rule_shared_in_a_misp_event_scans(tmp_path: Path) -> None:
    """The YARA attribute of a real CIRCL event (tests/fixtures/misp/image_event.json) is imported as a YARA
    indicator that compiles, and matches a file with its PE header and its WinExec/kernel32.DLL byte string."""
    data_dir = tmp_path / "node"
    kizuna_json(data_dir, "init", "--org-name", "NCSC UK", "--country", "GBR")
    kizuna_json(data_dir, "collections", "create", "--title", "CIRCL", "--alias", "circl")
    imported = kizuna_json(data_dir, "import", str(ROOT / "tests" / "fixtures" / "misp" / "image_event.json"),
                           "--collection", "circl")
    assert imported["sources"][0]["failed"] == 0
    root = tmp_path / "scan"
    root.mkdir()
    win_exec = bytes.fromhex("57696E45786563006B65726E656C33322E444C4C00000000")  # "WinExec\0kernel32.DLL\0…"
    (root / "loader.exe").write_bytes(b"MZ" + bytes(62) + win_exec)
    (root / "notes.txt").write_bytes(b"MZ but nothing else")
    summary = kizuna_json(data_dir, "match", "--yara", "--from-collection", "circl", str(root),
                          "--alerts", str(tmp_path / "alerts.jsonl"))
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert summary["hits"] == 1
    assert [(a["rule"], Path(a["file"]).name, a["indicator"]) for a in alerts] == [
        ("MAL_PE_Type_BabyShark_Loader", "loader.exe", "indicator--5c72ae10-aa9c-4068-853b-4b4602de0b81")]


def test_the_scan_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    root = _files(tmp_path)
    args = ["--data", str(tmp_path / "none"), "match", "--yara", "--indicators", str(_indicators(tmp_path)),
            str(root), "-o", str(tmp_path / "s.json")]
    status, _, screen = run_on_a_terminal([sys.executable, "-m", "kizuna", *args], tmp_path)
    assert status == 0
    assert "scanning" in screen and "4 files" in screen
    piped = kizuna(tmp_path / "none", *args[2:])
    assert "scanning" not in piped.stderr and piped.stderr.startswith("4 files scanned with 2 YARA indicators")


def test_the_documented_example_runs_as_written(tmp_path: Path) -> None:
    command = ("kizuna match --yara --indicators examples/yara/indicators.json examples/yara/samples \\ "
               "-o yara-sightings.json --alerts yara-alerts.jsonl")
    for document in ("README.md", "docs/detection.md", "examples/yara/README.md"):
        assert command in " ".join((ROOT / document).read_text().split()), document
    shutil.copytree(ROOT / "examples" / "yara", tmp_path / "examples" / "yara")  # the run writes nothing into the tree
    result = subprocess.run([sys.executable, "-m", "kizuna", *command.replace("\\", "").split()[1:]],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "KIZUNA_DATA": str(tmp_path / "none")})
    assert result.returncode == 0, result.stderr
    hits = [json.loads(line) for line in (tmp_path / "yara-alerts.jsonl").read_text().splitlines()]
    samples = "examples/yara/samples"
    assert sorted((h["file"], h["rule"]) for h in hits) == [
        (f"{samples}/config.ini", "example_loader"), (f"{samples}/mail/invoice.txt", "example_loader")]
    assert len({h["indicator"] for h in hits}) == 2  # same rule name, two producers: both hit
    sightings = [o for o in json.loads((tmp_path / "yara-sightings.json").read_text())["objects"]
                 if o["type"] == "sighting"]
    assert len(sightings) == 2 and result.stderr.startswith("3 files scanned with 2 YARA indicators, 2 hits")
