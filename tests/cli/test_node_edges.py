"""The node's edges on the command line: ports, unreachable stores, countries, moved nodes, the demo."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
import pytest
import requests
import trustme

from kizuna.cli import cli
from kizuna.cli.common import column_width, display_width, padded
from kizuna.config import shown_store_url
from kizuna.store.backup import pg_target
from tests.conftest import PG_ADMIN_URL, TAXII, create_pg_database, free_port, kizuna, kizuna_json

README = Path(__file__).resolve().parents[2] / "README.md"
#: Far below the 30 s the connection pool used to keep retrying; not a measure of speed.
CONNECT_DEADLINE_S = 15


def one_line_failure(result: subprocess.CompletedProcess[str], command: str) -> str:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"kizuna {command}: "), lines[0]
    return lines[0]


@pytest.fixture
def sqlite_node(tmp_path: Path) -> Path:
    directory = tmp_path / "node"
    kizuna_json(directory, "init", "--org-name", "NCSC UK", "--country", "GBR")
    return directory


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize("port", ["99999", "0", "-1", "65536"])
def test_serve_refuses_impossible_ports(sqlite_node: Path, port: str) -> None:
    result = kizuna(sqlite_node, "serve", f"--port={port}", check=False)
    line = one_line_failure(result, "serve")
    assert "--port" in line and result.returncode == 2


def test_serve_on_a_busy_port_fails_before_the_banner(sqlite_node: Path, busy_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kizuna", "--data", str(sqlite_node), "serve", "--port", str(busy_port)],
        capture_output=True, text=True, timeout=60,
    )
    line = one_line_failure(result, "serve")
    assert f"127.0.0.1:{busy_port}" in line and "in use" in line
    assert "server on" not in result.stderr


def test_demo_on_a_busy_port_creates_nothing(tmp_path: Path, busy_port: int) -> None:
    target = tmp_path / "demo-node"
    result = subprocess.run(
        [sys.executable, "-m", "kizuna", "--data", str(target), "demo", "--port", str(busy_port)],
        capture_output=True, text=True, timeout=60,
    )
    one_line_failure(result, "demo")
    assert not target.exists()  # no node, no token


def _missing_database_url() -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/kizuna_no_such_database"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A host that accepts TCP connections and never answers: what a wedged server looks like."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"postgresql://postgres@127.0.0.1:{listener.getsockname()[1]}/kizuna"


@pytest.mark.parametrize("where", ["missing database", "silent host"])
def test_an_unreachable_postgresql_fails_in_one_line_quickly(tmp_path: Path, silent_server: str,
                                                             where: str) -> None:
    url = _missing_database_url() if where == "missing database" else silent_server
    fresh = tmp_path / "fresh"
    result = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(fresh), "init", "--store", url],
                            capture_output=True, text=True, timeout=CONNECT_DEADLINE_S)
    assert "cannot connect to PostgreSQL" in one_line_failure(result, "init")
    assert not (fresh / "kizuna.toml").exists()
    # A node whose configured database went away: status and serve say so, in one line.
    configured = tmp_path / "configured"
    configured.mkdir()
    (configured / "kizuna.toml").write_text(f'store = "{url}"\n')
    for command in ("status", "serve"):
        result = subprocess.run([sys.executable, "-m", "kizuna", "--data", str(configured), command,
                                 *(["--port", str(free_port())] if command == "serve" else [])],
                                capture_output=True, text=True, timeout=CONNECT_DEADLINE_S)
        assert "cannot connect to PostgreSQL" in one_line_failure(result, command)


def _with_password(url: str, password: str) -> tuple[str, str]:
    """``url`` holding a password (the server trusts loopback, so any works), and the password it holds."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{parts.hostname}:{parts.port}")), password


def test_a_postgresql_password_is_never_shown(tmp_path: Path) -> None:
    """A store URL's password was printed by `init`, `status` (text and --json) and the connection errors."""
    database = create_pg_database("kizuna_masked")
    try:
        url, password = _with_password(database.url, "s3cr3tpw")
        masked = url.replace(f":{password}@", ":***@")
        node = tmp_path / "node"
        made = kizuna(node, "init", "--store", url, "--org-name", "NCSC UK")
        assert f"store:    {masked}" in made.stdout and password not in made.stdout + made.stderr
        assert password in (node / "kizuna.toml").read_text()  # only the configuration holds it
        shown = kizuna(node, "status")
        assert f"store:    {masked}" in shown.stdout and password not in shown.stdout + shown.stderr
        assert kizuna_json(node, "status")["store"] == masked
        again = one_line_failure(kizuna(tmp_path / "again", "init", "--store", url, check=False), "init")
        assert masked in again and password not in again
        # pg_dump and pg_restore get it in their environment, not on a command line every local user can read.
        target, env = pg_target(url)
        assert password not in target and env["PGPASSWORD"] == password
        backed = kizuna(node, "backup", str(tmp_path / "backup"))
        assert password not in backed.stdout + backed.stderr
        restored = kizuna(node, "restore", str(tmp_path / "backup"), "--force")
        assert password not in restored.stdout + restored.stderr
    finally:
        database.drop()
    gone = tmp_path / "gone"
    gone.mkdir()
    (gone / "kizuna.toml").write_text(f'store = "{url}"\n')
    for command, data in (("init", tmp_path / "fresh"), ("status", gone)):
        line = one_line_failure(kizuna(data, command, *(["--store", url] if command == "init" else []),
                                       check=False), command)
        assert f"cannot connect to PostgreSQL at {masked}" in line and password not in line
        as_json = kizuna(data, command, *(["--store", url] if command == "init" else []), "--json", check=False)
        assert masked in as_json.stdout and password not in as_json.stdout
    # A password libpq cannot read is quoted back in its message: masked there too.
    broken = url.replace(f":{password}@", ":s3cr3t%zz@")
    line = one_line_failure(kizuna(tmp_path / "broken", "init", "--store", broken, check=False), "init")
    assert "s3cr3t" not in line and '"***"' in line


@pytest.mark.parametrize("url, shown", [
    ("postgresql://kizuna:pw@db.example:5432/node", "postgresql://kizuna:***@db.example:5432/node"),
    ("postgres://kizuna:p%40ss:w@db/node?sslmode=require", "postgres://kizuna:***@db/node?sslmode=require"),
    ("postgresql://db/node?sslmode=require&password=pw", "postgresql://db/node?sslmode=require&password=***"),
    ("postgresql://kizuna@db/node", "postgresql://kizuna@db/node"),
    ("sqlite:///var/lib/kizuna/kizuna.db", "sqlite:///var/lib/kizuna/kizuna.db"),
])
def test_a_store_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert shown_store_url(url) == shown


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_organisation_name_is_refused_before_anything_is_made(tmp_path: Path, name: str) -> None:
    fresh = tmp_path / "fresh"
    line = one_line_failure(kizuna(fresh, "init", "--org-name", name, "--country", "GBR", check=False), "init")
    assert "--org-name is empty" in line and not (fresh / "kizuna.toml").exists()
    store = one_line_failure(kizuna(fresh, "init", "--store", name, "--org-name", "X", check=False), "init")
    assert "--store is empty" in store and not fresh.exists()  # not quietly the default SQLite file


@pytest.mark.parametrize("country", ["ZZZ", "UK", "XXX", "gb"])
def test_impossible_countries_are_refused(tmp_path: Path, sqlite_node: Path, country: str) -> None:
    fresh = tmp_path / "fresh"
    line = one_line_failure(kizuna(fresh, "init", "--country", country, check=False), "init")
    assert "ISO 3166-1 alpha-3" in line
    assert not fresh.exists() or not (fresh / "kizuna.toml").exists()  # refused before anything was made
    assert "ISO 3166-1 alpha-3" in one_line_failure(
        kizuna(sqlite_node, "orgs", "create", "Somewhere", "--country", country, check=False), "orgs create")


def test_countries_are_taken_in_any_case(sqlite_node: Path) -> None:
    created = kizuna_json(sqlite_node, "orgs", "create", "JPCERT/CC", "--country", "jpn")
    assert created["identity"]["x_kizuna_country"] == "JPN"
    listed = kizuna_json(sqlite_node, "orgs", "list")["organisations"]
    assert {"JPCERT/CC": "JPN"}.items() <= {o["name"]: o["country"] for o in listed}.items()


def test_orgs_list_names_this_nodes_organisation_and_its_clients(sqlite_node: Path) -> None:
    # Whether a partner is a client decides whether TLP:AMBER received from partner nodes reaches it.
    kizuna_json(sqlite_node, "orgs", "create", "東京オリンピック組織委員会", "--country", "JPN")
    home = next(o for o in kizuna_json(sqlite_node, "orgs", "list")["organisations"] if o["this_node"])
    kizuna_json(sqlite_node, "policy", "org", "東京オリンピック組織委員会", "--client-of", home["name"],
                "--community", "games")
    listed = {o["name"]: o for o in kizuna_json(sqlite_node, "orgs", "list")["organisations"]}
    client = listed["東京オリンピック組織委員会"]
    assert (client["client_of"], client["communities"], client["this_node"]) == ([home["name"]], ["games"], False)
    assert [o["name"] for o in listed.values() if o["this_node"]] == [home["name"]]
    header, *lines = kizuna(sqlite_node, "orgs", "list").stdout.splitlines()
    assert header.split() == ["NAME", "COUNTRY", "ROLE", "COMMUNITIES", "ID"]  # as `tokens list` heads its columns
    line = next(text for text in lines if text.startswith("東京オリンピック組織委員会"))
    assert f"client of {home['name']}" in line and " games " in line and line.endswith(client["id"])
    assert len({display_width(text) for text in lines}) == 1  # columns padded by terminal width: the ids line up
    assert display_width(header) == display_width(line) - len(client["id"]) + len("ID")  # and the header over them
    assert header.index("ROLE") == next(t for t in lines if t.startswith(home["name"])).index("this node")


def test_a_cursor_key_rotation_names_the_retired_keys_as_ids_not_counts(sqlite_node: Path) -> None:
    """`--keep 0` printed 'retired 0, 884cff95': the node's first key has the id 0, which read as a count."""
    kept = kizuna(sqlite_node, "cursor-keys", "rotate").stdout
    first = kizuna_json(sqlite_node, "cursor-keys", "rotate")["key_id"]
    assert kept.startswith("Cursors are now signed with key ") and "retired" not in kept
    assert "Running servers switch within a minute." in kept  # as README and docs/security.md say
    both = kizuna(sqlite_node, "cursor-keys", "rotate", "--keep", "0").stdout
    second = both.split()[6].rstrip(";")
    older = kept.split()[6].rstrip(".")
    assert f"; retired 3 keys (ids 0, {older}, {first}): their cursors are refused." in both
    one = kizuna(sqlite_node, "cursor-keys", "rotate", "--keep", "0").stdout
    assert f"; retired 1 key (id {second}): their cursors are refused." in one


def test_a_copied_node_directory_writes_into_the_copy(tmp_path: Path) -> None:
    original = tmp_path / "original"
    kizuna_json(original, "init", "--org-name", "NCSC UK", "--country", "GBR")
    kizuna_json(original, "collections", "create", "--title", "In", "--alias", "in")
    assert 'store = "sqlite:kizuna.db"' in (original / "kizuna.toml").read_text()
    copy = tmp_path / "moved" / "copy"
    shutil.copytree(original, copy)
    bundle = tmp_path / "one.json"
    bundle.write_text(json.dumps({"type": "identity", "spec_version": "2.1",
                                  "id": "identity--8c4a9f2e-5b1d-4e6f-9a3b-2d7c1e0f4a5b",
                                  "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z",
                                  "name": "Copy", "identity_class": "organization"}))
    kizuna_json(copy, "import", str(bundle), "--collection", "in")
    assert kizuna_json(copy, "status")["store"] == "sqlite:///" + str(copy / "kizuna.db").lstrip("/")
    assert [c["objects"] for c in kizuna_json(copy, "status")["collections"]] == [1]
    assert [c["objects"] for c in kizuna_json(original, "status")["collections"]] == [0]


def test_an_absolute_sqlite_config_keeps_working(tmp_path: Path) -> None:
    node = tmp_path / "node"
    kizuna_json(node, "init", "--org-name", "NCSC UK", "--country", "GBR")
    absolute = "sqlite:///" + str(node / "kizuna.db").lstrip("/")
    config = node / "kizuna.toml"
    config.write_text(config.read_text().replace('"sqlite:kizuna.db"', json.dumps(absolute)))
    assert kizuna_json(node, "status")["store"] == absolute


def test_demo_loads_only_into_a_demo_node_unless_forced(tmp_path: Path, sqlite_node: Path) -> None:
    line = one_line_failure(kizuna(sqlite_node, "demo", "--no-serve", check=False), "demo")
    assert "not a demo node" in line and "--force" in line
    assert kizuna_json(sqlite_node, "status")["collections"] == []  # nothing was loaded
    other = tmp_path / "not-empty"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert "--force" in one_line_failure(kizuna(other, "demo", "--no-serve", check=False), "demo")
    forced = kizuna_json(sqlite_node, "demo", "--no-serve", "--force")
    assert {c["alias"] for c in forced["collections"]} == {"attack-ics", "oasis-examples", "library"}
    demo = tmp_path / "demo"
    first = kizuna_json(demo, "demo", "--no-serve")
    counts = {c["alias"]: (c["objects"], c["read"], c["from_source"], c["added_by_node"]) for c in first["collections"]}
    # The OASIS examples' TLP 1.0 markings are normalised to the OASIS TLP 2.0 objects, which the node
    # adds (all five levels and their extension); one source marking becomes one of them, stored as the source's.
    assert counts == {"attack-ics": (1826, 1826, 1826, 0), "oasis-examples": (325, 320, 320, 5),
                      "library": (17, 11, 11, 6)}
    again = kizuna_json(demo, "demo", "--no-serve")  # a demo node is reused
    assert [c["objects"] for c in again["collections"]] == [1826, 325, 17] and again["token"] != first["token"]
    # A later run counts what the collection holds now, and says the split is the loading run's.
    kizuna(demo, "objects", "delete", "course-of-action--19a283fa-ae6a-5f09-b15f-f78942800e22", "-c", "library")
    line = next(line for line in kizuna(demo, "demo", "--no-serve").stdout.splitlines() if "alias library" in line)
    assert "16 objects now; an earlier run loaded: 11 of the 11 source objects + 6 OASIS" in line


def test_status_and_collection_list_show_aliases(sqlite_node: Path) -> None:
    made = kizuna_json(sqlite_node, "collections", "create", "--title", "Shared", "--alias", "shared")
    kizuna_json(sqlite_node, "collections", "create", "--title", "No alias")
    assert {c["alias"] for c in kizuna_json(sqlite_node, "status")["collections"]} == {"shared", None}
    assert f"/main/collections/{made['id']}/  alias shared  " in kizuna(sqlite_node, "status").stdout
    header, *listed = kizuna(sqlite_node, "collections", "list").stdout.splitlines()
    assert header.split() == ["ID", "API_ROOT", "ALIAS", "VERSIONS", "TITLE"]  # as `tokens list` heads its columns
    assert any(line.startswith(made["id"]) and " shared " in line for line in listed)
    assert {line.index("No alias") for line in listed if "No alias" in line} == {header.index("TITLE")}
    assert {line.index(" 0  ") + 1 for line in listed} == {header.index("VERSIONS") + len("VERSIONS") - 1}


def test_a_collection_named_by_its_title_is_refused_with_its_id_and_alias(sqlite_node: Path) -> None:
    made = kizuna_json(sqlite_node, "collections", "create", "--title", "Shared indicators", "--alias", "shared")
    failed = kizuna(sqlite_node, "export", "--collection", "Shared indicators", check=False)
    assert failed.returncode == 1
    assert failed.stderr == (f"kizuna export: no collection 'Shared indicators'; the collection titled "
                             f"'Shared indicators' is named by its id {made['id']} or alias 'shared'\n")
    nothing = kizuna(sqlite_node, "export", "--collection", "Nothing like it", check=False)
    assert nothing.stderr == "kizuna export: no collection 'Nothing like it'\n"


@pytest.mark.parametrize("alias", ["bad alias", " lead", "tab\there", "a/b", ""])
def test_an_alias_is_one_word(sqlite_node: Path, alias: str) -> None:
    """An alias is a URL path segment and a word in `tokens list` (`r:bad alias` read as two rights)."""
    line = one_line_failure(kizuna(sqlite_node, "collections", "create", "--title", "X", "--alias", alias,
                                   check=False), "collections create")
    assert "must be a non-empty word without '/' or spaces" in line


def test_an_alias_used_in_two_api_roots_is_refused_not_guessed(sqlite_node: Path) -> None:
    """An alias is unique within its API root; naming one that two roots use used to act on whichever root was
    listed first (an import stored into /games/ while the operator meant /main/)."""
    main = kizuna_json(sqlite_node, "collections", "create", "--title", "Main shared", "--alias", "shared")
    kizuna_json(sqlite_node, "api-roots", "create", "games", "--title", "Games")
    games = kizuna_json(sqlite_node, "collections", "create", "--title", "Games shared", "--alias", "shared",
                        "--api-root", "games")
    failed = kizuna(sqlite_node, "export", "--collection", "shared", check=False)
    line = one_line_failure(failed, "export")
    assert "more than one API root" in line and main["id"] in line and games["id"] in line
    refused = kizuna(sqlite_node, "tokens", "create", "--org", "NCSC UK", "--read", "shared", "--json", check=False)
    assert refused.returncode != 0
    assert json.loads(refused.stdout)["error"]["message"].startswith("alias 'shared' names a collection in more")
    assert kizuna_json(sqlite_node, "export", "--collection", main["id"], "--format", "stix", "-o",
                       str(sqlite_node / "main.json"))["objects"] == 0
    # Browsing, searching and deleting as well: a delete above all must not act on the collection it guessed.
    for command in (("objects", "list", "-c", "shared"), ("search", "anything", "--collection", "shared"),
                    ("objects", "delete", "indicator--00000000-0000-4000-8000-000000000001", "-c", "shared")):
        line = one_line_failure(kizuna(sqlite_node, *command, check=False), " ".join(command[:2])
                                if command[0] == "objects" else command[0])
        assert "more than one API root" in line and main["id"] in line and games["id"] in line, line
    assert kizuna_json(sqlite_node, "objects", "list", "-c", "shared", "--api-root", "games") == {"more": False}


def test_a_failed_sync_reports_every_partner_then_fails_in_one_line(sqlite_node: Path) -> None:
    kizuna_json(sqlite_node, "collections", "create", "--title", "Shared", "--alias", "shared")
    for name in ("down-a", "down-b"):  # nothing listens on port 9
        kizuna_json(sqlite_node, "partners", "add", name, "--url", "http://127.0.0.1:9/main/", "--token", "kz_x",
                    "--map", "shared=remote")
    result = kizuna(sqlite_node, "sync", "--quiet", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["down-a", "down-b"]
    assert "FAILED: down-a:" not in result.stdout and "; FAILED: cannot reach" in result.stdout  # named once
    assert result.stderr.startswith("kizuna sync: 2 of 2 partners failed; the first: down-a: ")
    assert result.stderr.count("\n") == 1
    as_json = kizuna(sqlite_node, "sync", "down-b", "--json", check=False)
    payload = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and payload["error"]["code"] == "sync" and len(payload["runs"]) == 1
    directory = kizuna(sqlite_node, "partners", "add", "certs", "--url", "https://127.0.0.1:9/main/", "--token",
                       "kz_x", "--map", "shared=remote", "--cert", str(sqlite_node), "--key", str(sqlite_node),
                       check=False)
    assert "is a directory, not a file" in one_line_failure(directory, "partners add")
    header, *listed = kizuna(sqlite_node, "partners", "list").stdout.splitlines()
    assert header.split() == ["NAME", "STATE", "KIND", "URL"]  # as `tokens list` heads its columns
    heads = [line for line in listed if not line.startswith(" ")]
    assert [line.split()[0] for line in heads] == ["down-a", "down-b"]
    assert {line.index("http://127.0.0.1:9/main/") for line in heads} == {header.index("URL")}
    gone = json.loads(kizuna(sqlite_node, "partners", "remove", "nosuch", "--json", check=False).stdout)
    assert gone["error"]["code"] == "not-found"  # as `partners show nosuch` says it


def test_agreements_list_names_the_partner_organisation(sqlite_node: Path) -> None:
    org = kizuna_json(sqlite_node, "orgs", "create", "JPCERT/CC", "--country", "JPN")
    missing = kizuna(sqlite_node, "agreements", "set", "uk-jp", "--max-tlp", "amber", check=False)
    assert (missing.returncode, missing.stderr) == (2, "kizuna agreements set: a new agreement needs --partner "
                                                       "('uk-jp' does not exist)\n")  # a usage error, as click's
    kizuna_json(sqlite_node, "agreements", "set", "uk-jp", "--partner", "JPCERT/CC", "--max-tlp", "amber")
    listed = kizuna_json(sqlite_node, "agreements", "list")["agreements"]
    assert [(a["id"], a["partner_name"]) for a in listed] == [("uk-jp", "JPCERT/CC")]
    text = kizuna(sqlite_node, "agreements", "list").stdout
    assert "uk-jp  v1  JPCERT/CC  max TLP:AMBER" in text and org["id"] not in text  # names, not keys
    made = kizuna_json(sqlite_node, "collections", "create", "--title", "Shared", "--alias", "shared")
    kizuna_json(sqlite_node, "agreements", "set", "uk-jp", "--collections", "shared")
    # The list names the collections an agreement covers (it did not show them at all), --json beside the ids.
    listing = kizuna(sqlite_node, "agreements", "list").stdout
    assert listing == "uk-jp  v2  JPCERT/CC  max TLP:AMBER  collections shared\n"
    listed = kizuna_json(sqlite_node, "agreements", "list")["agreements"]
    assert (listed[0]["collections"], listed[0]["collection_names"]) == ([made["id"]], ["shared"])
    shown = kizuna(sqlite_node, "agreements", "show", "uk-jp").stdout  # names, as the operator gave them
    assert "  partner:        JPCERT/CC\n" in shown and "  collections:    shared\n" in shown
    assert org["id"] not in shown and made["id"] not in shown and shown.startswith("uk-jp v1\n")
    kizuna_json(sqlite_node, "agreements", "set", "uk-jp", "--amber-to-clients")
    shown = kizuna(sqlite_node, "agreements", "show", "uk-jp").stdout  # every setting, --amber-to-clients too
    assert "AMBER to clients: no\n" in shown and shown.endswith("AMBER to clients: yes\n")
    # An agreement that is not there is not-found for show as for remove, whatever the command.
    for command in ("show", "remove"):
        nosuch = kizuna(sqlite_node, "agreements", command, "nosuch", "--json", check=False)
        assert (nosuch.returncode, json.loads(nosuch.stdout)["error"]["code"]) == (1, "not-found"), command


def test_policy_org_names_the_organisations_it_groups(sqlite_node: Path) -> None:
    partner = kizuna_json(sqlite_node, "orgs", "create", "NISC", "--country", "JPN")
    patron = kizuna_json(sqlite_node, "orgs", "create", "MOD JP", "--country", "JPN")
    kizuna_json(sqlite_node, "policy", "communities", "pact")
    text = kizuna(sqlite_node, "policy", "org", "NISC", "--community", "pact", "--client-of", "MOD JP").stdout
    assert text.strip() == "NISC: communities pact; client of MOD JP"
    grouped = kizuna_json(sqlite_node, "policy", "org", "NISC")
    assert (grouped["organisation"], grouped["client_of"]) == (partner["id"], [patron["id"]])
    assert (grouped["organisation_name"], grouped["client_of_names"]) == ("NISC", ["MOD JP"])


def test_the_own_organisation_switch_is_a_documented_flag(sqlite_node: Path) -> None:
    key = "home_organisation_sees_everything"
    assert kizuna_json(sqlite_node, "policy", "options")[key] is True
    assert kizuna_json(sqlite_node, "policy", "options", "--own-organisation-sees-as-partner")[key] is False
    assert kizuna_json(sqlite_node, "policy", "options", "--own-organisation-sees-everything")[key] is True
    markings = README.read_text().split("## Markings", 1)[1].split("\n## ", 1)[0]
    assert "kizuna policy options --own-organisation-sees-as-partner" in markings
    # The text spells values as the options take them (none, true), not as Python prints them.
    shown = kizuna(sqlite_node, "policy", "options", "--unmarked-tlp", "none").stdout.splitlines()
    assert "unmarked_tlp = none" in shown and f"{key} = true" in shown
    assert not any(word in line for line in shown for word in ("None", "True", "False"))


def _walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path) or "kizuna", command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))


def test_every_command_and_option_has_help() -> None:
    missing = []
    for name, command in _walk(cli):
        if not (command.help or command.short_help):
            missing.append(f"command {name}")
        missing += [f"{name} {'/'.join(p.opts)}" for p in command.params
                    if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert not missing, "no help text: " + ", ".join(missing)


def test_every_collection_option_is_also_dash_c() -> None:
    """`objects`, `search` and `preview` took `-c` and `import` did not: one spelling everywhere."""
    lacking = [name for name, command in _walk(cli) for p in command.params
               if isinstance(p, click.Option) and "--collection" in p.opts and "-c" not in p.opts]
    assert not lacking, "--collection without -c: " + ", ".join(lacking)


def test_an_organisation_can_take_a_partner_nodes_identity(sqlite_node: Path) -> None:
    """`orgs create --identity-id`: the partner's objects, made under its node's identity, are named by it."""
    partner = "identity--6e4b1c2a-33a5-4f0e-9a51-0c4a5d2f7e10"
    created = kizuna_json(sqlite_node, "orgs", "create", "Games SOC", "--country", "JPN", "--identity-id", partner)
    assert created["id"] == created["identity"]["id"] == partner
    assert {o["name"]: o["id"] for o in kizuna_json(sqlite_node, "orgs", "list")["organisations"]}["Games SOC"] \
        == partner
    taken = kizuna(sqlite_node, "orgs", "create", "Another SOC", "--identity-id", partner, check=False)
    assert "already an organisation of this node" in one_line_failure(taken, "orgs create")
    for wrong in ("indicator--6e4b1c2a-33a5-4f0e-9a51-0c4a5d2f7e10", "identity--nope"):
        refused = kizuna(sqlite_node, "orgs", "create", "Third SOC", "--identity-id", wrong, check=False)
        assert "is not a STIX identity id" in one_line_failure(refused, "orgs create")


def test_a_new_collection_is_named_by_its_alias_then_its_id(sqlite_node: Path) -> None:
    made = kizuna(sqlite_node, "collections", "create", "--title", "Games intel", "--alias", "games-intel").stdout
    (collection,) = [c for c in kizuna_json(sqlite_node, "collections", "list")["collections"]
                     if c.get("alias") == "games-intel"]
    assert made == f"Collection 'games-intel' created in /main/ (id {collection['id']})\n"


def test_partners_add_refuses_a_key_of_another_certificate_and_a_ca_file_without_one(
        sqlite_node: Path, tmp_path: Path) -> None:
    """Checked when the partner is added, named by option and file: stored, they failed only at the first
    sync, as `[X509: KEY_VALUES_MISMATCH]` without a file."""
    ca = trustme.CA()
    mine, other = ca.issue_cert("jp.example"), ca.issue_cert("uk.example")
    cert, key, wrong_key, ca_pem = (tmp_path / n for n in ("jp.pem", "jp.key", "uk.key", "ca.pem"))
    mine.cert_chain_pems[0].write_to_path(str(cert))
    mine.private_key_pem.write_to_path(str(key))
    other.private_key_pem.write_to_path(str(wrong_key))
    ca.cert_pem.write_to_path(str(ca_pem))
    kizuna_json(sqlite_node, "collections", "create", "--title", "Shared", "--alias", "shared")
    add = ["partners", "add", "uk", "--url", "https://127.0.0.1:9/main/", "--token", "kz_x", "--map",
           "shared=remote"]
    mismatch = kizuna(sqlite_node, *add, "--cert", str(cert), "--key", str(wrong_key), check=False)
    assert one_line_failure(mismatch, "partners add") == (
        f"kizuna partners add: --key {wrong_key} is not the key of the certificate --cert {cert}")
    readme = tmp_path / "README.md"
    readme.write_text("# not a certificate\n")
    not_ca = kizuna(sqlite_node, *add, "--ca", str(readme), check=False)
    assert f"--ca {readme}: no PEM certificate could be read from it" in one_line_failure(not_ca, "partners add")
    alone = kizuna(sqlite_node, *add, "--cert", str(cert), check=False)
    assert "--cert and --key go together" in one_line_failure(alone, "partners add")
    assert kizuna_json(sqlite_node, "partners", "list")["partners"] == []
    kizuna_json(sqlite_node, *add, "--cert", str(cert), "--key", str(key), "--ca", str(ca_pem))
    doctor = kizuna(sqlite_node, "doctor", "https://127.0.0.1:9/taxii2/", "--ca", str(readme), "--json", check=False)
    assert json.loads(doctor.stdout)["error"]["code"] == "tls" and doctor.returncode == 1


def test_a_key_kept_under_a_passphrase_is_refused_in_one_line_without_a_prompt(sqlite_node: Path,
                                                                               tmp_path: Path) -> None:
    """OpenSSL asked for the passphrase on the terminal (twice), then serve failed with `Invalid argument`; a node
    starts and syncs unattended, so such a key is named and refused, by serve and by partners add alike."""
    from cryptography.hazmat.primitives import serialization

    issued = trustme.CA().issue_cert("uk.example")
    cert, key = tmp_path / "uk.pem", tmp_path / "uk-enc.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    plain = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    key.write_bytes(plain.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.BestAvailableEncryption(b"secret")))
    served = kizuna(sqlite_node, "serve", "--port", str(free_port()), "--tls-cert", str(cert), "--tls-key", str(key),
                    check=False)
    assert one_line_failure(served, "serve").startswith(f"kizuna serve: --tls-key {key} is kept under a passphrase")
    kizuna_json(sqlite_node, "collections", "create", "--title", "Shared", "--alias", "shared")
    added = kizuna(sqlite_node, "partners", "add", "uk", "--url", "https://127.0.0.1:9/main/", "--token", "kz_x",
                   "--map", "shared=remote", "--cert", str(cert), "--key", str(key), check=False)
    assert one_line_failure(added, "partners add").startswith(
        f"kizuna partners add: --key {key} is kept under a passphrase")


def test_listings_line_up_under_japanese_names() -> None:
    names = ["東京2027-intel", "games-2027-watchlist", "x"]
    width = column_width(names)
    assert width == 20  # 東京 takes four terminal columns, the rest one each
    lines = [padded(name, width) + "|" for name in names]
    assert {column_width([line]) for line in lines} == {21}


def test_a_new_node_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """The data directory holds the partners' tokens (a node must present them) and every marked object: one
    that Kizuna makes is its owner's alone, and so are the configuration and the database with its journal."""
    data = tmp_path / "nested" / "node"
    kizuna_json(data, "init", "--org-name", "NCSC UK", "--country", "GBR")
    assert data.stat().st_mode & 0o777 == 0o700
    for name in ("kizuna.toml", "kizuna.db"):
        assert (data / name).stat().st_mode & 0o077 == 0, name
    # A directory the operator made and gave keeps the mode it has.
    given = tmp_path / "given"
    given.mkdir(mode=0o750)
    given.chmod(0o750)
    kizuna_json(given, "init", "--org-name", "NCSC UK", "--country", "GBR")
    assert given.stat().st_mode & 0o777 == 0o750 and (given / "kizuna.db").stat().st_mode & 0o077 == 0


def _line_within(stream: Any, deadline_s: float) -> str:
    """The next line of a child's pipe, or a failure after the deadline (a hang is a failure, not a wait)."""
    ready, _, _ = select.select([stream], [], [], deadline_s)
    assert ready, f"no line within {deadline_s}s"
    return str(stream.readline())


@pytest.mark.parametrize("workers", [1, 2])
def test_the_demo_prints_its_details_once_the_port_answers(tmp_path: Path, workers: int) -> None:
    # The README's quick start: the curl line printed by the demo must answer when pasted at once.
    # The server binds a second or two after it starts; printing before that sent the first request
    # to a closed port. With --workers 2 the same holds for `serve`'s own banner.
    port = free_port()
    if workers == 1:
        argv = ["demo", "--port", str(port), "--json"]
        kizuna_json(tmp_path / "node", "demo", "--no-serve")  # loaded once, so the served run only serves
    else:
        kizuna_json(tmp_path / "node", "init", "--org-name", "NCSC UK", "--country", "GBR")
        argv = ["serve", "--port", str(port), "--workers", "2", "--no-sync"]
    process = subprocess.Popen([sys.executable, "-m", "kizuna", "--data", str(tmp_path / "node"), *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if workers == 1:
            details = json.loads(_line_within(process.stdout, 120))
            collection = details["collections"][0]["id"]
            answer = requests.get(
                f"http://127.0.0.1:{port}/main/collections/{collection}/objects/",
                params={"match[type]": "malware", "limit": "5"},
                headers={"Authorization": f"Bearer {details['token']}", "Accept": TAXII}, timeout=30)
            assert answer.status_code == 200 and len(answer.json()["objects"]) == 5
        banner = _line_within(process.stderr, 120)
        assert "server on" in banner
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # no retry: it listens already
            pass
    finally:
        process.terminate()
        process.communicate(timeout=60)


def test_a_typo_in_the_number_of_server_processes_is_refused_before_any_starts(sqlite_node: Path) -> None:
    line = one_line_failure(kizuna(sqlite_node, "serve", "--workers", "100000", check=False), "serve")
    assert "'--workers'" in line and "1<=x<=64" in line


def test_a_node_whose_database_went_missing_says_so_and_writes_nothing(tmp_path: Path) -> None:
    """`status` on a data directory whose SQLite file is gone used to create an empty one, after which `init`
    refused (a node lives here) and nothing said what had happened."""
    data = tmp_path / "node"
    kizuna_json(data, "init", "--org-name", "Home")
    for leftover in data.glob("kizuna.db*"):
        leftover.unlink()
    line = one_line_failure(kizuna(data, "status", check=False), "status")
    assert f"the SQLite store {data / 'kizuna.db'} does not exist" in line and "kizuna restore" in line
    assert sorted(p.name for p in data.iterdir()) == ["kizuna.toml"]
    # A directory given as the store's file is named as such.
    folder = tmp_path / "folder"
    folder.mkdir()
    line = one_line_failure(kizuna(tmp_path / "other", "init", "--store", f"sqlite:///{folder}", check=False), "init")
    assert f"{folder} is a directory" in line and not (tmp_path / "other").exists()
    # A store file in a directory that does not exist (a typo) is refused, not made; one in the data directory is.
    missing = tmp_path / "no-such-dir" / "deeper"
    line = one_line_failure(kizuna(tmp_path / "third", "init", "--store", f"sqlite:///{missing}/x.db", check=False),
                            "init")
    assert f"directory {missing} does not exist" in line and not (tmp_path / "no-such-dir").exists()
    kizuna_json(tmp_path / "fourth", "init", "--store", "sqlite:stores/x.db")
    assert (tmp_path / "fourth" / "stores" / "x.db").is_file()


@pytest.mark.parametrize("name, args", [
    ("status", ()), ("tokens list", ()), ("collections list", ()), ("search", ("anything",)), ("audit verify", ()),
    ("dashboard", ()), ("sync", ()), ("serve", ("--port", "18441")), ("status", ("--json",)), ("init", ()),
])
def test_a_store_file_that_is_no_database_is_named_as_such(tmp_path: Path, name: str, args: tuple[str, ...]) -> None:
    """Garbage in kizuna.db was 'internal error (DatabaseError: file is not a database)' for every command."""
    data = tmp_path / "node"
    kizuna_json(data, "init", "--org-name", "Home")
    for leftover in data.glob("kizuna.db-*"):
        leftover.unlink()
    store = data / "kizuna.db"
    store.write_bytes(bytes(range(256)) * 64)
    if name == "init":  # a file given to init is not a node's store: nothing to restore
        result = kizuna(tmp_path / "fresh", "init", "--store", f"sqlite:///{store}", check=False)
        assert one_line_failure(result, "init") == f"kizuna init: {store} is not an SQLite database"
        return
    result = kizuna(data, *name.split(), *args, check=False)
    said = (json.loads(result.stdout)["error"]["message"] if "--json" in args
            else one_line_failure(result, name).removeprefix(f"kizuna {name}: "))
    assert said == (f"{store} is not an SQLite database: restore the node from a backup (`kizuna restore`) or "
                    "point kizuna.toml's store at the node's file")


def test_a_damaged_store_file_is_named_as_such(tmp_path: Path) -> None:
    data = tmp_path / "node"
    kizuna_json(data, "init", "--org-name", "Home")
    for leftover in data.glob("kizuna.db-*"):
        leftover.unlink()
    store = data / "kizuna.db"
    whole = store.read_bytes()
    store.write_bytes(whole[:4096] + b"\xff" * (len(whole) - 4096))  # the header and first page whole, not the rest
    line = one_line_failure(kizuna(data, "tokens", "list", check=False), "tokens list")
    assert f"the SQLite store {store} is damaged (database disk image is malformed): restore the node" in line


def test_an_output_of_dash_is_standard_output_where_it_may_be_and_refused_elsewhere(sqlite_node: Path) -> None:
    kizuna_json(sqlite_node, "collections", "create", "--title", "Out", "--alias", "out")
    dashed = kizuna(sqlite_node, "export", "--collection", "out", "-o", "-")
    plain = kizuna(sqlite_node, "export", "--collection", "out")
    assert json.loads(dashed.stdout)["objects"] == json.loads(plain.stdout)["objects"]
    assert not (Path.cwd() / "-").exists() and not (sqlite_node / "-").exists()
    for command in (("export", "--collection", "out"), ("audit", "export")):
        # -o was given: the error says that --json cannot go with -o -, not that -o is missing.
        as_json = kizuna(sqlite_node, *command, "-o", "-", "--json", check=False)
        assert as_json.returncode == 2 and as_json.stderr == ""
        error = json.loads(as_json.stdout)["error"]
        assert error["message"].startswith("--json cannot go with -o -: "), error
        assert error["code"] == "usage"
        missing = kizuna(sqlite_node, *command, "--json", check=False)
        assert json.loads(missing.stdout)["error"]["message"].startswith("--json needs -o FILE: ")
    feed = kizuna(sqlite_node, "export", "--collection", "out", "--format", "misp-feed", "-o", "-", check=False)
    assert "misp-feed cannot be written to standard output (-o -): give -o DIRECTORY" in feed.stderr
    for args, said in ((("import", os.devnull, "--collection", "out", "--report", "-"), "'-' (standard output)"),
                       (("export", "--collection", "out", "-o", ""), "the output needs a file name"),
                       (("export", "--collection", "out", "-o", "/dev/full"), "No space left on device: /dev/full")):
        assert said in one_line_failure(kizuna(sqlite_node, *args, check=False), args[0])


def test_an_empty_data_directory_is_refused_not_taken_for_the_default(tmp_path: Path) -> None:
    """`--data "$NODE"` with NODE unset in a script must not act on ./kizuna-data."""
    from tests.kizuna_process import run_kizuna

    result = run_kizuna(["--data", "", "status"])
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "kizuna status: Invalid value for '--data': is empty: give the node's data directory"]
