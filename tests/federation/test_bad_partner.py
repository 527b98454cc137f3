"""A bad partner is refused when it is added, and one that gets into the store anyway fails alone."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trustme

from tests.conftest import TAXII, free_port
from tests.federation.helpers import (
    FedNode,
    RoutedServer,
    ScriptedServer,
    add_partner,
    garbage_http,
    grant_partner,
    indicator,
    make_fed_node,
    poll,
    sync,
    taxii_http,
    write_sql,
)


def _refusal(node: FedNode, *args: str) -> str:
    """Run ``partners add`` expecting a refusal; return its one stderr line."""
    result = node.cli("partners", "add", *args, check=False)
    assert result.returncode != 0, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kizuna partners add: "), result.stderr
    return lines[0]


def _client_pair(cert: Path, key: Path) -> None:
    """A client certificate and its key, as a partner's CA would issue them."""
    issued = trustme.CA().issue_cert("jp-node.example")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))


def test_partners_add_refuses_what_cannot_work(tmp_path: Path) -> None:
    jp = make_fed_node(tmp_path, "JP", "JPN")
    key = tmp_path / "client.key"
    key.write_text("not really a key")
    good = ["--map", "shared=remote-collection:pull", "--token", "kz_ok"]
    refusals = {
        "ending with '/'": ["P", "--url", "https://partner.example/main", *good],
        "must start with http:// or https://": ["P", "--url", "ftp://partner.example/main/", *good],
        "has no host": ["P", "--url", "https:///main/", *good],
        "not a valid URL": ["P", "--url", "https://partner.example:http/main/", *good],
        "no collection 'missing'": ["P", "--url", "https://p.example/main/", "--map", "missing=r", "--token", "t"],
        "the token must be printable ASCII": ["P", "--url", "https://p.example/main/", "--map", "shared=r",
                                              "--token", "kz_caf\u00e9"],
        "the token must be printable ASCII without spaces": ["P", "--url", "https://p.example/main/",
                                                             "--map", "shared=r", "--token", "kz one"],
        "basic credentials": ["P", "--url", "https://p.example/main/", "--map", "shared=r", "--basic", "u:p\u00e4ss"],
        "--cert": ["P", "--url", "https://p.example/main/", "--map", "shared=r", "--cert",
                   str(tmp_path / "absent.pem"), "--key", str(key)],
        "--ca": ["P", "--url", "https://p.example/main/", "--map", "shared=r", "--ca", str(tmp_path / "none")],
        "schedule must be between": ["P", "--url", "https://p.example/main/", "--map", "shared=r",
                                     "--schedule", "0"],
        "page size must be between": ["P", "--url", "https://p.example/main/", "--map", "shared=r",
                                      "--page-size", "100000"],
        "remote collection must be an id or alias": ["P", "--url", "https://p.example/main/",
                                                     "--map", "shared=a/b"],
        # TLS options over http:// would be stored and ignored: the operator would believe the partner checked
        "--ca needs an https:// URL": ["P", "--url", "http://p.example/main/", "--map", "shared=r",
                                       "--ca", str(key)],
        "--cert and --key need an https:// URL": ["P", "--url", "http://p.example/main/", "--map", "shared=r",
                                                  "--cert", str(key), "--key", str(key)],
        "--pin needs an https:// URL": ["P", "--url", "http://p.example/main/", "--map", "shared=r",
                                        "--pin", "ab" * 32],
    }
    for expected, args in refusals.items():
        assert expected in _refusal(jp, *args), expected
    assert jp.cli_json("partners", "list")["partners"] == []  # nothing half-stored

    # A "certificate" and "key" that are neither is refused when added, not at the first sync.
    assert "not a PEM certificate and its key" in _refusal(jp, "P", "--url", "https://p.example/main/", *good,
                                                             "--key", str(key), "--cert", str(key))
    cert = tmp_path / "client.pem"
    _client_pair(cert, key)
    jp.cli_json("partners", "add", "P", "--url", "https://p.example/main/", *good, "--key", str(key),
                "--cert", str(cert))
    assert "already exists" in _refusal(jp, "P", "--url", "https://q.example/main/", *good)
    stored = jp.cli_json("partners", "list")["partners"]
    assert [p["api_root_url"] for p in stored] == ["https://p.example/main/"]
    assert stored[0]["client_cert"] == str(cert.resolve())  # absolute: the worker runs elsewhere

    # With --json the refusal is one error object on stdout.
    result = jp.cli("partners", "add", "Q", "--url", "http://q.example/main", *good, "--json", check=False)
    assert result.returncode != 0 and result.stderr == ""
    error = json.loads(result.stdout)["error"]
    assert "ending with '/'" in error["message"]


def test_one_bad_partner_does_not_stop_the_others(tmp_path: Path, store_url: str) -> None:
    uk = make_fed_node(tmp_path, "UK", "GBR")
    jp = make_fed_node(tmp_path, "JP", "JPN", store_url=store_url)
    grant_partner(uk, jp, "JPN")
    garbage = ScriptedServer(garbage_http())
    # Partners whose pages go round: the same next token again and again, or dates that never move.
    circle = ScriptedServer(taxii_http(b'{"more": true, "next": "same", "objects": []}'))
    stall = ScriptedServer(taxii_http(b'{"more": true, "objects": []}', {
        "X-TAXII-Date-Added-First": "2026-01-01T00:00:00.000000Z",
        "X-TAXII-Date-Added-Last": "2026-01-01T00:00:00.000000Z"}))
    # A partner that says there is more and gives no way to ask for it.
    stuck = ScriptedServer(taxii_http(b'{"more": true}'))
    # A Kizuna-like partner whose objects are read to the end, and whose tombstones go round.
    recall = RoutedServer({"/objects/": b'{"more": false}', "/tombstones/": b'{"more": true, "tombstones": [], '
                                                                           b'"deleted_last": 5, "withdrawn_last": 5}'})
    uk.start()
    try:
        uk.post(indicator(uk.identity, versions=2))
        add_partner(jp, uk, "pull")
        jp.cli_json("partners", "add", "GARBAGE", "--url", garbage.url, "--map", "shared=c:pull", "--token", "t")
        jp.cli_json("partners", "add", "CIRCLE", "--url", circle.url, "--map", "shared=c:pull", "--token", "t")
        jp.cli_json("partners", "add", "STALL", "--url", stall.url, "--map", "shared=c:pull", "--token", "t")
        jp.cli_json("partners", "add", "RECALL", "--url", recall.url, "--map", "shared=c:pull", "--token", "t")
        jp.cli_json("partners", "add", "STUCK", "--url", stuck.url, "--map", "shared=c:pull", "--token", "t")
        # Files that vanish after the partner was added make the TLS setup itself raise (not a partner error).
        cert, key = tmp_path / "c.pem", tmp_path / "c.key"
        _client_pair(cert, key)  # usable when added (partners add checks them), gone by the sync
        jp.cli_json("partners", "add", "CERTLESS", "--url", garbage.url.replace("http:", "https:"),
                    "--map", "shared=c:pull", "--cert", str(cert), "--key", str(key))
        cert.unlink()
        key.unlink()
        # Configurations that `partners add` would refuse, planted straight into the store.
        planted = {"name": "ACCENT", "api_root_url": uk.api_root_url,
                   "mappings": [{"local": "shared", "remote": uk.collection, "direction": "pull"}],
                   "token": "kz_caf\u00e9"}
        write_sql(jp, "INSERT INTO fed_partners (name, config, created_at) VALUES (?, ?, ?)",
                  ("ACCENT", json.dumps(planted), 1))
        write_sql(jp, "INSERT INTO fed_partners (name, config, created_at) VALUES (?, ?, ?)",
                  ("CORRUPT", "{not json", 1))

        result = jp.cli("sync", "--json", check=False)
        assert result.returncode == 1 and result.stderr == ""
        runs = {r["partner"]: r for r in json.loads(result.stdout)["runs"]}
        assert runs["UK"]["error"] is None and runs["UK"]["pulled"] == 2
        assert "not JSON" in runs["GARBAGE"]["error"]
        for name in ("CIRCLE", "STALL", "RECALL"):
            assert "go round in a circle" in runs[name]["error"], runs[name]
            assert runs[name]["pages"] == 1  # one page of objects, then a page came again: stopped
        assert "gave neither next nor X-TAXII-Date-Added-Last" in runs["STUCK"]["error"]
        assert "FileNotFoundError" in runs["CERTLESS"]["error"]
        assert "printable ASCII" in runs["ACCENT"]["error"]
        assert "unreadable" in runs["CORRUPT"]["error"]
        assert len(jp.versions()) == 2
        # Every failure names its partner, whatever raised it: the client, the walk or the configuration.
        assert all(r["error"].startswith(f"{name}: ") for name, r in runs.items() if name != "UK"), runs
        alone = jp.cli("sync", "STUCK", check=False)
        assert alone.stderr == "kizuna sync: 1 of 1 partners failed; the first: STUCK: the partner said more=true " \
                               "but gave neither next nor X-TAXII-Date-Added-Last\n", alone.stderr
        assert alone.stdout.startswith("STUCK: pulled 0 new") and "; FAILED: the partner said" in alone.stdout

        listed = {p["name"]: p for p in jp.cli_json("partners", "list")["partners"]}
        assert listed["UK"]["status"]["state"] == "ok" and listed["UK"]["status"]["last_success"]
        for name in ("GARBAGE", "CIRCLE", "STALL", "RECALL", "CERTLESS", "ACCENT", "CORRUPT"):
            status = listed[name]["status"]
            assert status["state"] == "backoff", name
            assert status["last_error"] == runs[name]["error"] and status["consecutive_failures"] == 1
            assert status["next_attempt"] > status["last_attempt"]  # a retry after a backoff, not at once
            assert status["last_success"] is None
        assert "config_error" in listed["CORRUPT"] and "config_error" in listed["ACCENT"]
        text = jp.cli("partners", "list").stdout
        assert "last error: GARBAGE" in text and "next attempt" in text
        assert "last error: STUCK: the partner said more=true" in text

        # The scheduled worker goes the same way: a new version from UK arrives in spite of the others.
        uk.post(indicator(uk.identity))
        write_sql(jp, "UPDATE fed_status SET next_attempt = 0")
        jp.start(worker=True)
        poll(lambda: len(jp.versions()) == 3, what="the good partner's scheduled run")
        poll(lambda: all(p["status"]["consecutive_failures"] >= 2 for p in
                         jp.cli_json("partners", "list")["partners"] if p["name"] != "UK"),
             what="the bad partners' second failures")
        # The HTTP status lists the unreadable entries too, with what is wrong and no secret.
        over_http = httpx.get(f"{jp.api_root_url}federation/partners/", timeout=60,
                              headers={"Accept": TAXII, "Authorization": f"Bearer {jp.admin_token}"})
        assert over_http.status_code == 200
        served = {p["name"]: p for p in over_http.json()["partners"]}
        assert "unreadable" in served["CORRUPT"]["config_error"] and served["CORRUPT"]["status"]["state"] == "backoff"
        # The refused token is never shown ("kz_caf", not "caf", which a random uuid in the listing may hold).
        assert served["UK"]["status"]["last_success"] and "kz_caf" not in over_http.text
    finally:
        jp.stop()
        uk.stop()
        for server in (garbage, circle, stall, recall, stuck):
            server.close()


@pytest.mark.parametrize("option", ["--token", "--basic"])
def test_stored_secret_check_matches_add(tmp_path: Path, option: str) -> None:
    """What `partners add` refuses is also refused when read back, so it never reaches an HTTP header."""
    from kizuna.federation.config import ConfigProblem, PartnerConfig

    text = json.dumps({"name": "X", "api_root_url": "https://x.example/main/",
                       "mappings": [{"local": "a", "remote": "b", "direction": "pull"}],
                       "token" if option == "--token" else "basic_auth": "u:\u00e9"})
    with pytest.raises(ConfigProblem, match="stored configuration is invalid"):
        PartnerConfig.from_json(text)


def test_poison_objects_are_quarantined_once_though_the_partner_serves_them_every_sync(
        tmp_path: Path, store_url: str) -> None:
    """A last page without X-TAXII-Date-Added-Last leaves the pull nowhere to move past it: the partner serves the
    same page at every sync. Its valid versions come again as duplicates, and its poison objects are quarantined
    once, not again at every sync (docs/federation.md, poison objects)."""
    jp = make_fed_node(tmp_path, "JP", "JPN", store_url=store_url)
    good = indicator("identity--8e2e2d2b-17d4-4cbd-938e-3b7a8d1b0a01")
    poison = [{"type": "indicator", "spec_version": "2.1", "id": "indicator--5b1d2f8e-4c1a-4f7e-9a55-0f6e7d2c3b10"},
              {"type": "malware", "spec_version": "2.1", "id": "malware--0c3e8a61-2b3d-4e8f-a1c4-5d6e7f8a9b20",
               "created": "not a timestamp", "modified": "not a timestamp", "name": "x", "is_family": False}]
    page = json.dumps({"more": False, "objects": [*good, *poison]}).encode()
    partner = RoutedServer({"/objects/": page})  # no date headers; tombstones unknown (404): not a Kizuna node
    try:
        jp.cli_json("partners", "add", "HEADERLESS", "--url", partner.url, "--map", "shared=c:pull", "--token", "t")
        runs = [sync(jp, "HEADERLESS")["runs"][0] for _ in range(3)]
        assert [(r["error"], r["pulled"], r["duplicates"], r["quarantined"]) for r in runs] == [
            (None, 1, 0, 2), (None, 0, 1, 0), (None, 0, 1, 0)]
        shown = jp.cli_json("partners", "show", "HEADERLESS")
        assert shown["status"]["quarantined"] == 2
        assert sorted(q["id"] for q in shown["quarantine"]) == sorted(p["id"] for p in poison)
    finally:
        partner.close()


def test_partners_add_asks_the_partner_and_refuses_what_it_refuses(tmp_path: Path) -> None:
    """A wrong token, a remote collection the partner does not list, or one the token may not write to for a
    push, is refused when the partner is added (the first sync would fail the same way); a partner that
    cannot be reached now is added with a note, and --no-check adds without asking."""
    uk = make_fed_node(tmp_path, "UK", "GBR")
    jp = make_fed_node(tmp_path, "JP", "JPN")
    token = grant_partner(uk, jp, "JPN")
    read_only = uk.cli_json("tokens", "create", "--org", "JP national CERT", "--read", "shared")["token"]
    silent = ScriptedServer(None)  # accepts connections and never answers
    uk.start()
    try:
        url = uk.api_root_url
        wrong_token = _refusal(jp, "ASK1", "--url", url, "--map", "shared=shared", "--token", "kz_wrong")
        assert f"GET {url} answered 401" in wrong_token and "refuses the token" in wrong_token, wrong_token
        assert "--no-check" in wrong_token
        missing = _refusal(jp, "ASK2", "--url", url, "--map", "shared=no-such-coll", "--token", token)
        assert "--map shared=no-such-coll: ASK2 lists no collection 'no-such-coll'" in missing, missing
        assert "(it lists: shared)" in missing  # the alias the partner gives, not only its id
        push = _refusal(jp, "ASK3", "--url", url, "--map", "shared=shared:both", "--token", read_only)
        assert "does not let this token write to collection 'shared' (Shared)" in push, push
        assert jp.cli_json("partners", "list")["partners"] == []  # nothing stored by a refusal
        json_refusal = jp.cli("partners", "add", "ASK1", "--url", url, "--map", "shared=shared", "--token",
                              "kz_wrong", "--json", check=False)
        assert json_refusal.returncode == 1 and json_refusal.stderr == ""
        assert "answered 401" in json.loads(json_refusal.stdout)["error"]["message"]

        good = jp.cli_json("partners", "add", "ASK4", "--url", url, "--map", f"shared={uk.collection}:both",
                           "--map", "shared=shared:pull", "--token", token)
        assert (good["checked"], good["notes"]) == (True, [])
        text = jp.cli("partners", "add", "ASK5", "--url", url, "--map", "shared=shared", "--token", token).stdout
        assert text == "Partner ASK5 added (1 collection mapping(s)); the partner answered as configured\n"
        unchecked = jp.cli_json("partners", "add", "ASK6", "--url", url, "--map", "shared=no-such-coll",
                                "--token", "kz_wrong", "--no-check")
        assert (unchecked["checked"], unchecked["notes"]) == (False, [])

        down = f"http://127.0.0.1:{free_port()}/main/"  # nothing listens there
        added = jp.cli("partners", "add", "ASK7", "--url", down, "--map", "shared=shared", "--token", "t")
        first, note = added.stdout.splitlines()
        assert first == "Partner ASK7 added (1 collection mapping(s))" and added.stderr == ""
        assert note.startswith("note: could not ask ASK7 now (cannot reach") and "`kizuna sync ASK7`" in note
        hanging = jp.cli_json("partners", "add", "ASK8", "--url", silent.url, "--map", "shared=c", "--token", "t")
        assert hanging["checked"] and "timed out" in hanging["notes"][0], hanging["notes"]
        assert sorted(p["name"] for p in jp.cli_json("partners", "list")["partners"]) == [
            "ASK4", "ASK5", "ASK6", "ASK7", "ASK8"]
    finally:
        uk.stop()
        silent.close()
