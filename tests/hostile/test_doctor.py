"""``kizuna doctor`` against real servers: a Kizuna node passes every check, medallion (the OASIS
TAXII 2.1 reference server, as a real process on its memory backend) fails the ones where it
deviates from the specification, found by running the doctor against it:

* authentication: a request without credentials is refused with an HTML page, not a TAXII error
  object (§3.6);
* content-negotiation: ``Accept: application/taxii+json`` without a version is refused with 406,
  where TAXII 2.1 reads it as the newest version the server speaks (§1.6.8).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import TAXII, ServerProcess, free_port, kizuna, kizuna_json, start_server, wait_for_port
from tests.federation.helpers import start_medallion


def _indicator(n: int, modified: str) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--6b0c1c8e-95a4-4d4c-9f1e-00000000000{n}",
            "created": "2026-01-01T00:00:00.000Z", "modified": modified, "pattern_type": "stix",
            "pattern": f"[ipv4-addr:value = '198.51.100.{n}']", "valid_from": "2026-01-01T00:00:00Z"}


OBJECTS = [_indicator(1, "2026-01-01T00:00:00.000Z"), _indicator(1, "2026-02-01T00:00:00.000Z"),
           _indicator(2, "2026-01-01T00:00:00.000Z"), _indicator(3, "2026-01-01T00:00:00.000Z")]


def doctor(*args: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run([sys.executable, "-m", "kizuna", "doctor", *args, "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.stderr == "", result.stderr
    return result.returncode, json.loads(result.stdout)


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["id"]: check["status"] for check in report["checks"]}


@pytest.fixture(scope="module")
def kizuna_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str, str]]:
    data = tmp_path_factory.mktemp("doctor") / "node"
    kizuna_json(data, "init", "--org-name", "Home", "--country", "GBR")
    collection = kizuna_json(data, "collections", "create", "--title", "Checked", "--alias", "checked")["id"]
    token = kizuna_json(data, "tokens", "create", "--org", "Home", "--read", collection, "--write", collection)["token"]
    server = start_server(data, sync=False)
    posted = requests.post(f"{server.base}/main/collections/{collection}/objects/", json={"objects": OBJECTS},
                           headers={"Authorization": f"Bearer {token}", "Accept": TAXII, "Content-Type": TAXII},
                           timeout=30)
    assert posted.status_code == 202, posted.text
    try:
        yield server, token, collection
    finally:
        server.stop()


def test_a_kizuna_node_passes_every_check_including_the_write_path(kizuna_peer: tuple[ServerProcess, str, str],
                                                                  ) -> None:
    server, token, collection = kizuna_peer
    code, report = doctor(f"{server.base}/taxii2/", "--token", token, "--write", collection)
    found = statuses(report)
    assert code == 0, report
    # Plain HTTP on loopback is the one warning; every check ran on real data, none was skipped.
    assert found.pop("tls") == "warn"
    assert set(found.values()) == {"pass"}, report
    assert {"paging", "match-type", "added-after", "versions", "add-objects"} <= set(found)
    assert report["summary"] == {"conformant": True, "credentials_refused": None, "write_refused": None,
                                 "counts": {"pass": len(found), "fail": 0, "warn": 1, "skip": 0}}
    sections = {check["id"]: check["section"] for check in report["checks"]}
    assert sections["discovery"] == "§4.1" and sections["error-body"] == "§3.6"


def test_the_text_report_names_each_check_its_section_and_a_summary(kizuna_peer: tuple[ServerProcess, str, str],
                                                                   ) -> None:
    server, token, _ = kizuna_peer
    result = kizuna(Path("/nonexistent-kizuna-node"), "doctor", f"{server.base}/main/", "--token", token)
    lines = result.stdout.splitlines()
    assert any(line.startswith("PASS  api-root") and "§4.2" in line for line in lines)
    # Given an API root rather than discovery, the discovery check says so and the rest still run.
    assert any(line.startswith("SKIP  discovery") for line in lines)
    assert lines[-1].startswith(f"{server.base}/main/: conformant")


def test_a_wrong_token_is_named_not_blamed_on_the_server(kizuna_peer: tuple[ServerProcess, str, str]) -> None:
    server, _, _ = kizuna_peer
    code, report = doctor(f"{server.base}/taxii2/", "--token", "not-a-token")
    assert code == 1
    # Not checked, rather than failed: the 401 answers the credentials, not the server's discovery.
    assert statuses(report)["discovery"] == "skip"
    assert "fail" not in statuses(report).values(), statuses(report)
    assert report["checks"][0]["detail"].startswith("not checked, the credentials were refused: ")
    # Refused credentials say nothing of the server's conformance: not known, and the refusal in words.
    assert report["summary"]["conformant"] is None
    assert report["summary"]["credentials_refused"].startswith("401 Authentication required")
    assert "b'" not in report["checks"][0]["detail"]
    text = kizuna(Path("/nonexistent-kizuna-node"), "doctor", f"{server.base}/taxii2/", "--token", "not-a-token",
                  check=False)
    assert "not checked, it refused these credentials (401" in text.stdout.splitlines()[-1]
    assert "NOT conformant" not in text.stdout and " 0 failed" in text.stdout and text.returncode == 1


def test_the_users_own_mistakes_are_not_blamed_on_the_server(kizuna_peer: tuple[ServerProcess, str, str]) -> None:
    """A collection that is not there (or the token may not write) is answered 404/403 as TAXII 2.1 §5.5 says:
    the write path asked for went unchecked, so the check fails naming --write and the exit is 1, but the
    server is not called non-conformant. Without a token the API root is refused before content
    negotiation can be judged; the server's root is a redirect, not a discovery answer."""
    server, token, _ = kizuna_peer
    code, report = doctor(f"{server.base}/taxii2/", "--token", token, "--write", "nosuch")
    add = next(check for check in report["checks"] if check["id"] == "add-objects")
    assert code == 1 and report["summary"]["conformant"] is True
    assert add["status"] == "fail" and add["detail"].startswith("--write 'nosuch': the server has no such collection")
    assert report["summary"]["write_refused"] == add["detail"]
    text = kizuna(Path("/nonexistent-kizuna-node"), "doctor", f"{server.base}/taxii2/", "--token", token,
                  "--write", "nosuch", check=False)
    assert text.returncode == 1 and "FAIL  add-objects" in text.stdout
    assert "conformant as far as checked, the write path not (--write 'nosuch': " in text.stdout.splitlines()[-1]
    reader = kizuna_json(server.data_dir, "tokens", "create", "--org", "Home", "--read", "checked")["token"]
    code, report = doctor(f"{server.base}/taxii2/", "--token", reader, "--write", "checked")
    add = next(check for check in report["checks"] if check["id"] == "add-objects")
    assert code == 1 and report["summary"]["conformant"] is True and add["status"] == "fail"
    assert add["detail"].startswith("--write 'checked': the server refused the token a write there (403")
    code, report = doctor(f"{server.base}/taxii2/")
    assert statuses(report)["content-negotiation"] == "skip" and report["summary"]["conformant"] is None
    code, report = doctor(f"{server.base}/", "--token", token)
    first = report["checks"][0]
    assert first["id"] == "discovery" and first["status"] == "fail"
    assert "a redirect to" in first["detail"] and "…/taxii2/" in first["detail"]


def test_medallion_is_reported_with_its_known_deviations(tmp_path: Path) -> None:
    process, port, collection = start_medallion(tmp_path / "medallion", OBJECTS)
    try:
        code, report = doctor(f"http://127.0.0.1:{port}/taxii2/", "--basic", "sync:secret", "--write", collection)
    finally:
        process.terminate()
        process.wait(timeout=10)
    found = statuses(report)
    assert code == 1
    assert found["authentication"] == "fail"
    assert found["content-negotiation"] == "fail"
    details = {check["id"]: check["detail"] for check in report["checks"]}
    assert "text/html" in details["authentication"]
    assert "406" in details["content-negotiation"]
    # What medallion does right is reported as passing, so the failures above are not the doctor's own.
    assert {found[c] for c in ("discovery", "api-root", "manifest", "paging", "versions", "add-objects")} == {"pass"}


@pytest.mark.parametrize("url", ["taxii.example.org", "ftp://peer.example/taxii2/", "https://:443/",
                                 "http://peer.example:port/", "http://localhost:99999/taxii2/"])
def test_a_url_that_is_not_one_fails_in_one_line(url: str) -> None:
    result = kizuna(Path("/nonexistent-kizuna-node"), "doctor", url, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("kizuna doctor: ") and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("args,said", [
    (("--token", "kz_caf\u00e9"), "the token must be printable ASCII"),
    (("--basic", "nocolon"), "basic credentials must read user:password"),
    (("--basic", ":"), "neither the user nor the password empty"),
    (("--token", "t", "--basic", "u:p"), "not both"),
    (("--write", ""), "--write '': give the id or alias of a collection"),
    (("--write", "a/b"), "--write 'a/b': give the id or alias of a collection"),
    (("--ca", __file__), "--ca needs an https:// URL"),  # over http:// there is no certificate to check
])
def test_options_that_cannot_be_sent_are_refused_before_any_request(args: tuple[str, ...], said: str) -> None:
    """As `partners add` refuses them: a usage error, not a check the server is blamed for failing. Port 9 has
    no server, so a request sent would fail otherwise."""
    result = kizuna(Path("/nonexistent-kizuna-node"), "doctor", "http://127.0.0.1:9/taxii2/", *args, check=False)
    (line,) = result.stderr.splitlines()
    assert result.returncode == 2 and line.startswith("kizuna doctor: ") and said in line, line


def test_a_server_that_does_not_answer_fails_in_one_line() -> None:
    result = kizuna(Path("/nonexistent-kizuna-node"), "doctor", "http://127.0.0.1:9/taxii2/", "--json", check=False)
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "unavailable"


def test_tls_passes_with_the_partners_ca_and_an_untrusted_certificate_is_refused(
        kizuna_peer: tuple[ServerProcess, str, str], tmp_path: Path) -> None:
    import trustme

    server, token, _ = kizuna_peer
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    port = free_port()
    # The same node's app behind uvicorn's own TLS (kizuna serve has no TLS options yet).
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "kizuna.app:app_from_environment", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--ssl-keyfile", str(tmp_path / "key.pem"), "--ssl-certfile", str(tmp_path / "cert.pem"),
         "--log-level", "warning"],
        env={**os.environ, "KIZUNA_DATA": str(server.data_dir)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        url = f"https://127.0.0.1:{port}/taxii2/"
        code, report = doctor(url, "--token", token, "--ca", str(tmp_path / "ca.pem"))
        assert code == 0, report
        assert statuses(report)["tls"] == "pass"
        untrusted = kizuna(Path("/nonexistent-kizuna-node"), "doctor", url, "--token", token, "--json", check=False)
        assert untrusted.returncode == 1
        error = json.loads(untrusted.stdout)["error"]
        assert error["code"] == "tls" and "--ca" in error["message"]
    finally:
        process.terminate()
        process.wait(timeout=10)
