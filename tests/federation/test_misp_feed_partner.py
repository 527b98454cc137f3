"""A MISP feed as a partner: real CIRCL events in a real feed served over loopback HTTP, `kizuna sync` as a
real process, a real node on SQLite and PostgreSQL.

The feed server honours ETag and If-Modified-Since the way a web server in front of a MISP feed does,
and counts every request, so the tests can say exactly what a run fetched.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kizuna.formats.misp_feed import MANIFEST, write_misp_feed
from kizuna.policy.tlp import TLP2_IDS, TlpLevel
from tests.conftest import free_port
from tests.federation.helpers import FedNode, make_fed_node, poll, sync, write_sql

FIXTURES = Path(__file__).parents[1] / "fixtures" / "misp"
#: Real CIRCL OSINT-feed events (tlp:white), small enough for a quick feed.
EVENTS = ["57c4445b-c548-4654-af0b-4be3950d210f.json", "galaxy_1.json", "to_delete1.json"]
BROKEN_UUID = "0b5e1c6a-9d1f-4d7e-8a44-3f0c2b9d7e11"
MISSING_UUID = "7d2c4e8f-1a3b-4c5d-9e6f-0a1b2c3d4e5f"


def _event(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return document


def _uuid(name: str) -> str:
    return str(_event(name)["Event"]["uuid"])


class FeedServer:
    """A directory served over HTTP with ETag/Last-Modified validators; counts (path, status) per request."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.requests: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
                name = self.path.rsplit("/", 1)[-1]
                status, body, headers = server.answer(name, self.headers)
                with server._lock:
                    server.requests[(name, status)] += 1
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/feeds/circl"

    def answer(self, name: str, request: Any) -> tuple[int, bytes, dict[str, str]]:
        path = self.directory / name
        if "/" in name or not path.is_file():
            return 404, b"not found", {}
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        modified = int(path.stat().st_mtime)
        headers = {"ETag": etag, "Last-Modified": formatdate(modified, usegmt=True),
                   "Content-Type": "application/json"}
        if request.get("If-None-Match"):
            if request["If-None-Match"] == etag:
                return 304, b"", headers
        elif request.get("If-Modified-Since"):
            if parsedate_to_datetime(request["If-Modified-Since"]).timestamp() >= modified:
                return 304, b"", headers
        return 200, body, headers

    def take(self) -> Counter[tuple[str, int]]:
        """The requests since the last call."""
        with self._lock:
            seen, self.requests = self.requests, Counter()
        return seen

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _feed_run(result: dict[str, Any], partner: str) -> dict[str, Any]:
    run: dict[str, Any] = next(r for r in result["runs"] if r["partner"] == partner)
    return run


def _stored(node: FedNode) -> dict[str, dict[str, Any]]:
    """The latest stored version of each object of the shared collection, parsed."""
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for (stix_id, version), body in node.versions().items():
        if stix_id not in latest or version > latest[stix_id][0]:
            latest[stix_id] = (version, json.loads(body))
    return {stix_id: body for stix_id, (_, body) in latest.items()}


def test_a_misp_feed_partner_imports_incrementally_with_markings_and_provenance(
    tmp_path: Path, store_url: str,
) -> None:
    feed_dir = tmp_path / "feed"
    write_misp_feed([_event(name) for name in EVENTS], feed_dir)
    node = make_fed_node(tmp_path, "UK", "GBR", store_url=store_url)
    server = FeedServer(feed_dir)
    try:
        added = node.cli_json("partners", "add", "CIRCL", "--misp-feed", server.url, "--collection", "shared")
        assert added["kind"] == "misp-feed" and added["api_root_url"] == server.url + "/"
        assert (added["checked"], added["notes"]) == (True, [])
        assert server.take() == Counter({(MANIFEST, 200): 1})  # `partners add` asked for the manifest once
        listed = node.cli_json("partners", "list")["partners"]
        assert [(p["name"], p["kind"]) for p in listed] == [("CIRCL", "misp-feed")]
        assert "misp-feed" in node.cli("partners", "list").stdout

        # First run: the manifest and every event, once each.
        run = _feed_run(sync(node), "CIRCL")
        assert run["error"] is None and run["events"] == 3 and run["events_failed"] == 0
        assert server.take() == Counter({(MANIFEST, 200): 1, **{(f"{_uuid(n)}.json", 200): 1 for n in EVENTS}})
        stored = _stored(node)
        reports = {o["id"].partition("--")[2]: o for o in stored.values() if o["type"] in ("report", "grouping")}
        assert set(reports) == {_uuid(n) for n in EVENTS}
        # tlp:white events: every object they produced carries the OASIS TLP 2.0 CLEAR marking.
        content = [o for o in stored.values() if o["type"] not in ("marking-definition", "extension-definition",
                                                                     "identity")]
        assert len(content) > 100
        assert all(TLP2_IDS[TlpLevel.CLEAR] in o.get("object_marking_refs", []) for o in content)
        # Provenance names the partner and the event each version came from.
        provenance = node.sql("SELECT partner, remote_collection, COUNT(*) FROM fed_provenance "
                              "GROUP BY partner, remote_collection")
        assert {(p, r) for p, r, _ in provenance} == {("CIRCL", f"misp-event:{_uuid(n)}") for n in EVENTS}
        assert sum(count for _, _, count in provenance) == run["pulled"]
        # Each event's loss report is an audit record, and the run counts the losses.
        audit = [json.loads(line) for line in node.cli("audit", "export").stdout.splitlines() if line.strip()]
        imports = [r for r in audit if r.get("kind") == "misp-import"]
        assert sorted(r["body"]["event"] for r in imports) == sorted(_uuid(n) for n in EVENTS)
        assert all(r["principal"] == "partner:CIRCL" for r in imports)
        assert run["losses"] == sum(len(r["body"]["losses"]) for r in imports) > 0

        # Nothing changed: only the manifest is asked for, and the feed answers 304.
        run = _feed_run(sync(node), "CIRCL")
        assert run["error"] is None and run["pulled"] == 0 and run["mappings"][0]["manifest"] == "unchanged"
        assert server.take() == Counter({(MANIFEST, 304): 1})

        # One event changes (MISP bumps its timestamp): that event alone is fetched again.
        changed = _event(EVENTS[0])
        changed["Event"]["timestamp"] = str(int(changed["Event"]["timestamp"]) + 3600)
        changed["Event"]["info"] += " (updated)"
        write_misp_feed([changed], feed_dir)
        run = _feed_run(sync(node), "CIRCL")
        assert run["error"] is None and run["events"] == 1 and run["pulled"] >= 1
        assert server.take() == Counter({(MANIFEST, 200): 1, (f"{_uuid(EVENTS[0])}.json", 200): 1})
        report = _stored(node)[f"report--{_uuid(EVENTS[0])}"]
        assert report["name"].endswith("(updated)")

        # A broken event and one the feed does not serve are reported by uuid; the others still import.
        (feed_dir / f"{BROKEN_UUID}.json").write_bytes(b'{"Event": {"uuid": "' + BROKEN_UUID.encode() + b'", ')
        manifest = json.loads((feed_dir / MANIFEST).read_text())
        entry = dict(manifest[_uuid(EVENTS[1])], timestamp=1767225600)
        manifest[BROKEN_UUID] = manifest[MISSING_UUID] = entry
        (feed_dir / MANIFEST).write_text(json.dumps(manifest))
        newer = _event(EVENTS[1])
        newer["Event"]["timestamp"] = "1767225600"
        write_misp_feed([newer], feed_dir)
        result = node.cli("sync", "--json", check=False)
        assert result.returncode == 0, result.stdout
        run = _feed_run(json.loads(result.stdout), "CIRCL")
        failed = {f["uuid"]: f["reason"] for f in run["mappings"][0]["failed"]}
        assert set(failed) == {BROKEN_UUID, MISSING_UUID} and "404" in failed[MISSING_UUID]
        assert "JSON" in failed[BROKEN_UUID]
        assert run["events"] == 1 and run["events_failed"] == 2
        assert any(BROKEN_UUID in note for note in run["notes"]) and any(MISSING_UUID in n for n in run["notes"])
        quarantined = node.cli_json("partners", "show", "CIRCL")["quarantine"]
        assert any(BROKEN_UUID in q["reason"] for q in quarantined)
        assert server.take() == Counter({(MANIFEST, 200): 1, (f"{BROKEN_UUID}.json", 200): 1,
                                         (f"{MISSING_UUID}.json", 404): 1, (f"{_uuid(EVENTS[1])}.json", 200): 1})
        # The event the feed did not serve is asked for again (so is the manifest); the unusable one is
        # not, until the feed changes it.
        run = _feed_run(sync(node), "CIRCL")
        assert run["error"] is None and run["events"] == 0 and run["events_failed"] == 1
        assert server.take() == Counter({(MANIFEST, 200): 1, (f"{MISSING_UUID}.json", 404): 1})
        status = node.cli_json("partners", "list")["partners"][0]["status"]
        assert status["state"] == "ok" and any(MISSING_UUID in note for note in status["notes"])
    finally:
        server.close()


def test_an_event_gone_from_the_feed_is_recalled_and_comes_back_when_listed_again(
    tmp_path: Path, store_url: str,
) -> None:
    feed_dir = tmp_path / "feed"
    kept, gone = _uuid(EVENTS[0]), _uuid(EVENTS[2])
    write_misp_feed([_event(EVENTS[0]), _event(EVENTS[2])], feed_dir)
    node = make_fed_node(tmp_path, "UK", "GBR", store_url=store_url)
    node.cli_json("partners", "add", "CIRCL", "--misp-feed", str(feed_dir), "--collection", "shared")
    assert _feed_run(sync(node), "CIRCL")["events"] == 2
    brought = node.sql("SELECT p.stix_id, o.type FROM fed_provenance p JOIN objects o ON o.collection_pk = "
                       "p.collection_pk AND o.stix_id = p.stix_id AND o.version = p.version "
                       "WHERE p.remote_collection = ?", (f"misp-event:{gone}",))
    content = {stix_id for stix_id, kind in brought if kind not in ("identity", "marking-definition",
                                                                    "extension-definition")}
    assert f"report--{gone}" in content and len(content) > 1

    manifest = json.loads((feed_dir / MANIFEST).read_text())
    listed = dict(manifest)
    del manifest[gone]  # the producer deleted or unpublished the event
    (feed_dir / MANIFEST).write_text(json.dumps(manifest))
    run = _feed_run(sync(node), "CIRCL")
    counts = run["mappings"][0]
    assert run["error"] is None and (counts["withdrawn_events"], counts["recalled"]) == (1, len(content))
    assert any(gone in note and "recalled" in note for note in run["notes"])
    stored = _stored(node)
    assert not content & set(stored) and f"report--{kept}" in stored
    assert {stix_id for stix_id, kind in brought if kind == "identity"} <= set(stored)  # shared by other events
    # Kept as recalled copies: a node pulling from this one learns of the recall from its tombstones.
    recalled = node.sql("SELECT DISTINCT stix_id FROM fed_withdrawn WHERE reason = 'recalled'")
    assert {row[0] for row in recalled} == content
    assert _feed_run(sync(node), "CIRCL")["mappings"][0]["withdrawn_events"] == 0  # recalled once only

    (feed_dir / MANIFEST).write_text(json.dumps(listed))  # the event is published again
    run = _feed_run(sync(node), "CIRCL")
    assert run["events"] == 1 and f"report--{gone}" in _stored(node)


def test_a_dead_feed_fails_alone_by_hand_and_in_the_worker(tmp_path: Path, store_url: str) -> None:
    feed_dir = tmp_path / "feed"
    write_misp_feed([_event(EVENTS[0])], feed_dir)
    node = make_fed_node(tmp_path, "UK", "GBR", store_url=store_url)
    dead = f"http://127.0.0.1:{free_port()}/feed/"  # nothing listens there
    node.cli_json("partners", "add", "DEAD", "--misp-feed", dead, "--collection", "shared")
    node.cli_json("partners", "add", "LOCAL", "--misp-feed", str(feed_dir), "--collection", "shared")
    assert node.cli_json("partners", "show", "LOCAL")["api_root_url"] == feed_dir.resolve().as_uri()
    assert "events of the feed go to collection shared" in node.cli("partners", "show", "LOCAL").stdout

    result = node.cli("sync", "--json", check=False)
    assert result.returncode == 1 and result.stderr == ""
    runs = {r["partner"]: r for r in json.loads(result.stdout)["runs"]}
    assert "cannot reach" in runs["DEAD"]["error"] and runs["DEAD"]["events"] == 0
    assert runs["LOCAL"]["error"] is None and runs["LOCAL"]["events"] == 1
    first = len(node.versions())
    assert first > 10
    listed = {p["name"]: p["status"] for p in node.cli_json("partners", "list")["partners"]}
    assert listed["DEAD"]["state"] == "backoff" and listed["DEAD"]["consecutive_failures"] == 1
    assert listed["LOCAL"]["state"] == "ok"

    # The scheduled worker: the feed directory gains an event, which arrives although DEAD keeps failing.
    write_misp_feed([_event(EVENTS[1])], feed_dir)
    write_sql(node, "UPDATE fed_status SET next_attempt = 0")
    node.start(worker=True)
    try:
        poll(lambda: len(node.versions()) > first, what="the local feed's scheduled run")
        poll(lambda: node.cli_json("partners", "show", "DEAD")["status"]["consecutive_failures"] >= 2,
             what="the dead feed's second failure")
        containers = {o["id"].partition("--")[2] for o in _stored(node).values() if o["type"] in ("report", "grouping")}
        assert containers == {_uuid(EVENTS[0]), _uuid(EVENTS[1])}
    finally:
        node.stop()


@pytest.mark.parametrize("location", ["file", "uri"])
def test_partners_add_checks_the_feed_location(tmp_path: Path, location: str) -> None:
    node = make_fed_node(tmp_path, "UK", "GBR")
    empty = tmp_path / "empty"
    empty.mkdir()
    target = str(empty) if location == "file" else empty.as_uri()
    result = node.cli("partners", "add", "F", "--misp-feed", target, "--collection", "shared", check=False)
    assert result.returncode != 0 and "no directory with a manifest.json" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "--no-check" in result.stderr
    assert node.cli_json("partners", "list")["partners"] == []
    # A feed directory that is not there yet (a share mounted later) is added with --no-check, as a URL is.
    later = tmp_path / "not-mounted-yet"
    target = str(later) if location == "file" else later.as_uri()
    added = node.cli_json("partners", "add", "F", "--misp-feed", target, "--collection", "shared", "--no-check")
    assert (added["api_root_url"], added["checked"], added["notes"]) == (later.as_uri(), False, [])


def test_partners_add_asks_a_feed_url_for_its_manifest_as_it_checks_a_directory(tmp_path: Path) -> None:
    """A feed URL is asked for its manifest.json when added, as a feed directory is looked into: a definite
    "not there" or "not for you" (404, 401, 403) is refused like a directory without the file; a feed that
    cannot be reached now is added with a note; a manifest that is not one is added with a note."""
    node = make_fed_node(tmp_path, "UK", "GBR")
    empty, garbled = tmp_path / "empty", tmp_path / "garbled"
    empty.mkdir()
    garbled.mkdir()
    (garbled / MANIFEST).write_text("<html>sign in</html>")
    no_manifest, not_a_manifest = FeedServer(empty), FeedServer(garbled)
    try:
        refused = node.cli("partners", "add", "F1", "--misp-feed", no_manifest.url, "--collection", "shared",
                           check=False)
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr == (f"kizuna partners add: --misp-feed: GET {no_manifest.url}/{MANIFEST} answered 404: "
                                  "there is no manifest.json there; give --no-check to add it anyway\n")
        assert node.cli_json("partners", "list")["partners"] == []

        dead = f"http://127.0.0.1:{free_port()}/feed/"  # nothing listens there
        added = node.cli("partners", "add", "F2", "--misp-feed", dead, "--collection", "shared")
        first, note = added.stdout.splitlines()
        assert first == "MISP feed partner F2 added (events go to shared)" and added.stderr == ""
        assert note.startswith(f"note: could not ask F2 now (cannot reach {dead}{MANIFEST}"), note
        odd = node.cli_json("partners", "add", "F3", "--misp-feed", not_a_manifest.url, "--collection", "shared")
        assert odd["checked"] and odd["notes"][0].startswith(f"{MANIFEST} is not JSON"), odd["notes"]
        (garbled / MANIFEST).write_text("[]")  # JSON, not a manifest: the same note for a directory
        local = node.cli_json("partners", "add", "F4", "--misp-feed", str(garbled), "--collection", "shared")
        assert local["notes"][0].startswith(f"{MANIFEST} is not a JSON object keyed by event uuid"), local["notes"]
        unchecked = node.cli_json("partners", "add", "F5", "--misp-feed", no_manifest.url, "--collection", "shared",
                                  "--no-check")
        assert (unchecked["checked"], unchecked["notes"]) == (False, [])
        assert sorted(p["name"] for p in node.cli_json("partners", "list")["partners"]) == ["F2", "F3", "F4", "F5"]
    finally:
        no_manifest.close()
        not_a_manifest.close()
