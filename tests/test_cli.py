"""The `kizuna` command, run as a real process against real stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import TAXII, kizuna, kizuna_json, start_server
from tests.kizuna_process import run_kizuna

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def data_dir(tmp_path: Path, store_url: str) -> Path:
    directory = tmp_path / "node"
    kizuna_json(directory, "init", "--org-name", "NCSC UK", "--country", "GBR", "--store", store_url)
    return directory


def test_init_records_identity_and_store(tmp_path: Path, store_url: str) -> None:
    result = kizuna_json(tmp_path / "n", "init", "--org-name", "NISC", "--country", "JPN", "--store", store_url)
    assert result["store"] == store_url
    assert result["identity"]["type"] == "identity"
    assert result["identity"]["name"] == "NISC"
    status = kizuna_json(tmp_path / "n", "status")
    assert status["identity"] == result["identity"]["id"]
    assert status["api_roots"] == ["main"]
    again = kizuna(tmp_path / "n", "init", check=False)
    assert again.returncode != 0 and "already" in again.stderr


def test_data_dir_from_environment(tmp_path: Path) -> None:
    env = {**os.environ, "KIZUNA_DATA": str(tmp_path / "envnode")}
    subprocess.run([sys.executable, "-m", "kizuna", "init", "--json"], env=env, check=True, capture_output=True)
    out = subprocess.run(
        [sys.executable, "-m", "kizuna", "status", "--json"], env=env, check=True, capture_output=True, text=True
    )
    assert json.loads(out.stdout)["data_dir"] == str(tmp_path / "envnode")


def test_an_empty_or_blank_kizuna_data_is_refused_as_an_empty_data_option_is(tmp_path: Path) -> None:
    """An unset variable in a script (`KIZUNA_DATA=$NODE`) made every command quietly use ./kizuna-data, and
    `init` made a directory named " "; --data '' was already refused, and now the variable is too."""
    for value in ("", " ", "\t"):
        env = {**os.environ, "KIZUNA_DATA": value}
        for args in (["status"], ["status", "--json"]):
            result = run_kizuna(args, env=env)
            assert result.returncode == 2, (value, result)
            said = "Invalid value for 'KIZUNA_DATA': is empty: give the node's data directory"
            if "--json" in args:
                assert said in json.loads(result.stdout)["error"]["message"]
            else:
                assert result.stderr.startswith(f"kizuna status: {said}") and result.stderr.count("\n") == 1
    # --data given decides, whatever the variable holds.
    kizuna_json(tmp_path / "node", "init", "--org-name", "Home", "--country", "GBR")
    given = run_kizuna(["--data", str(tmp_path / "node"), "status", "--json"], env={**os.environ, "KIZUNA_DATA": ""})
    assert given.returncode == 0 and json.loads(given.stdout)["data_dir"] == str(tmp_path / "node")


def test_commands_without_a_node_fail_with_a_clear_message(tmp_path: Path) -> None:
    result = kizuna(tmp_path / "nothing", "status", check=False)
    assert result.returncode == 1
    assert "no Kizuna node here" in result.stderr and "Traceback" not in result.stderr


def test_import_reports_bad_objects_by_line_and_keeps_the_good(data_dir: Path, tmp_path: Path) -> None:
    kizuna_json(data_dir, "collections", "create", "--title", "In", "--alias", "in")
    bundle = json.loads((FIXTURES / "sighting-of-an-indicator.json").read_text())
    bad = {"type": "indicator", "spec_version": "2.1", "id": "indicator--not-a-uuid"}
    objects = bundle["objects"][:2] + [bad] + bundle["objects"][2:]
    path = tmp_path / "mixed.json"
    path.write_text('{"type": "bundle", "id": "bundle--1", "objects": [\n'
                    + ",\n".join(json.dumps(o) for o in objects) + "\n]}\n")
    result = kizuna(data_dir, "import", str(path), "--collection", "in", check=False)
    assert result.returncode == 1
    assert f"{path}:4: indicator--not-a-uuid:" in result.stdout
    report = json.loads(kizuna(data_dir, "import", str(path), "--collection", "in", "--json", check=False).stdout)
    # The second import finds the four valid objects already stored.
    assert (report["total"], report["stored"], report["duplicates"], report["rejected"]) == (5, 0, 4, 1)
    assert report["failures"][0]["line"] == 4
    listed = kizuna_json(data_dir, "collections", "list")["collections"]
    assert next(c for c in listed if c["alias"] == "in")["objects"] == 4


def test_import_of_broken_json_names_file_and_line(data_dir: Path, tmp_path: Path) -> None:
    kizuna_json(data_dir, "collections", "create", "--title", "In", "--alias", "in")
    path = tmp_path / "broken.json"
    path.write_text('{"objects": [\n{"type": "identity",\n "id": }\n]}')
    result = kizuna(data_dir, "import", str(path), "--collection", "in", check=False)
    assert result.returncode == 1
    assert f"{path}:3" in result.stderr
    missing = kizuna(data_dir, "import", str(tmp_path / "absent.json"), "--collection", "in", check=False)
    assert missing.returncode != 0 and "absent.json" in missing.stderr


def test_export_returns_every_version_byte_for_byte(data_dir: Path, tmp_path: Path) -> None:
    kizuna_json(data_dir, "collections", "create", "--title", "Marked", "--alias", "marked")
    # Unmarked content: ingest stores it exactly as sent (marked content gains OASIS TLP ids).
    source = FIXTURES / "sighting-of-an-indicator.json"
    kizuna_json(data_dir, "import", str(source), "--collection", "marked")
    out = tmp_path / "export.json"
    kizuna(data_dir, "export", "--collection", "marked", "-o", str(out))
    exported = json.loads(out.read_text())
    original = json.loads(source.read_text())["objects"]
    assert exported["type"] == "bundle"
    # Same objects, same key order, same values: the serialisations are identical.
    assert sorted(json.dumps(o) for o in exported["objects"]) == sorted(json.dumps(o) for o in original)


def test_token_lifecycle_over_http(data_dir: Path) -> None:
    collection = kizuna_json(data_dir, "collections", "create", "--title", "T", "--alias", "t")["id"]
    kizuna_json(data_dir, "orgs", "create", "JPCERT/CC", "--country", "JPN")
    token = kizuna_json(data_dir, "tokens", "create", "--org", "JPCERT/CC", "--read", "t")
    listed = kizuna_json(data_dir, "tokens", "list")["tokens"]
    assert token["token"] not in json.dumps(listed)  # secrets are never listed
    server = start_server(data_dir)
    try:
        url = f"{server.base}/main/collections/{collection}/"
        headers = {"Accept": TAXII, "Authorization": f"Bearer {token['token']}"}
        assert requests.get(url, headers=headers).status_code == 200
        kizuna_json(data_dir, "tokens", "revoke", token["id"])
        refused = requests.get(url, headers=headers)
        assert refused.status_code == 401
        assert "WWW-Authenticate" in refused.headers
    finally:
        server.stop()


def test_admin_errors_are_one_line_messages(data_dir: Path) -> None:
    for args, expected in [
        (("collections", "create", "--title", "X", "--api-root", "nope"), "API root 'nope' does not exist"),
        (("tokens", "create", "--org", "Nobody"), "no organisation 'Nobody'"),
        (("orgs", "create", "Bad country", "--country", "UK"), "ISO 3166-1 alpha-3"),
        (("tokens", "revoke", "0000"), "no active token"),
    ]:
        result = kizuna(data_dir, *args, check=False)
        assert result.returncode == 1, args
        assert expected in result.stderr and "Traceback" not in result.stderr


def test_demo_loads_attributed_public_content(tmp_path: Path) -> None:
    info = kizuna_json(tmp_path / "demo", "demo", "--no-serve")
    counts = {c["alias"]: c["objects"] for c in info["collections"]}
    # 320 OASIS examples (one TLP 1.0 definition becoming an OASIS TLP 2.0 one) plus the five OASIS TLP 2.0
    # definitions and their extension the node adds; the library's 11 items and translations plus the same six.
    assert counts == {"attack-ics": 1826, "oasis-examples": 325, "library": 17}
    assert info["token"].startswith("kz_")
    again = kizuna_json(tmp_path / "demo", "demo", "--no-serve")
    assert {c["objects"] for c in again["collections"]} == {1826, 325, 17}
    assert again["token"] != info["token"]
