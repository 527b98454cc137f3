"""Fault injection with real processes: kill -9 the syncing process, kill -9 the partner, a garbage partner."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.federation.helpers import (
    FedNode,
    add_partner,
    bulk_indicators,
    grant_partner,
    indicator,
    make_fed_node,
    sync,
)

TOTAL = 3000


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FedNode, FedNode]]:
    base: Path = tmp_path_factory.mktemp("resume")
    uk = make_fed_node(base, "UK", "GBR")
    jp = make_fed_node(base, "JP", "JPN")
    grant_partner(uk, jp, "JPN")
    uk.start()
    try:
        objects = bulk_indicators(uk.identity, TOTAL)
        for start in range(0, TOTAL, 1000):
            uk.post(objects[start : start + 1000])
        add_partner(jp, uk, "pull", page_size=10)
        yield uk, jp
    finally:
        uk.stop()


def _pulled(node: FedNode) -> int:
    return int(node.sql("SELECT COUNT(*) FROM fed_provenance")[0][0])


def _wait_for_progress(node: FedNode, process: subprocess.Popen[bytes], at_least: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        count = _pulled(node)
        if count >= at_least:
            return count
        assert process.poll() is None, "the sync ended before it could be interrupted"
        time.sleep(0.02)  # polling the store for progress, bounded by the deadline
    raise AssertionError("no progress")


def _start_sync(node: FedNode) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "kizuna", "--data", str(node.data_dir), "sync", "UK", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def test_kill_9_of_the_syncing_process_resumes_without_loss_or_duplicate(pair: tuple[FedNode, FedNode]) -> None:
    uk, jp = pair
    process = _start_sync(jp)
    _wait_for_progress(jp, process, 200)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted = _pulled(jp)
    assert 0 < interrupted < len(uk.versions())
    # What was committed is whole pages, with the cursor that points past them.
    position = json.loads(jp.sql("SELECT position FROM fed_cursors WHERE partner = 'UK'")[0][0])
    assert position["next"] is not None

    run = sync(jp, "UK")["runs"][0]

    on_uk, on_jp = uk.versions(), jp.versions()
    assert on_jp == on_uk
    assert run["pulled"] == len(on_uk) - interrupted
    assert run["duplicates"] == 0  # resumed exactly where it stopped
    assert _pulled(jp) == len(on_uk)


def test_partner_killed_mid_sync_is_caught_up_after_restart(pair: tuple[FedNode, FedNode]) -> None:
    uk, jp = pair
    assert uk.server is not None
    port = uk.server.port
    more = bulk_indicators(uk.identity, 2000)
    uk.post(more[:1000])
    uk.post(more[1000:])
    before = _pulled(jp)
    process = _start_sync(jp)
    _wait_for_progress(jp, process, before + 100)
    uk.server.process.send_signal(signal.SIGKILL)
    uk.server.process.wait()
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 1
    failed = json.loads(out)["runs"][0]
    assert failed["error"]
    status = jp.cli_json("partners", "show", "UK")["status"]
    assert status["state"] == "backoff" and status["consecutive_failures"] == 1 and status["last_error"]

    uk.start(port=port)
    run = sync(jp, "UK")["runs"][0]
    assert run["error"] is None
    assert jp.versions() == uk.versions()
    assert jp.cli_json("partners", "show", "UK")["status"]["state"] == "ok"


class _Garbage(BaseHTTPRequestHandler):
    """A partner that answers with a page holding a poison object, then with garbage."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if "added_after" not in self.path:
            objects = indicator("identity--5f1d6e4a-6d4b-4b53-9a51-4a0c1c33c7a5")
            objects.append({"type": "indicator", "id": "indicator--not-a-uuid", "spec_version": "2.1"})
            body = json.dumps({"more": True, "objects": objects}).encode()
            headers = {"X-TAXII-Date-Added-First": "2026-01-01T00:00:00.000000Z",
                       "X-TAXII-Date-Added-Last": "2026-01-01T00:00:01.000000Z"}
        else:
            body, headers = b"<html>this is not TAXII</html>", {}
        self.send_response(200)
        self.send_header("Content-Type", "application/taxii+json;version=2.1")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_poison_is_quarantined_and_garbage_backs_off(pair: tuple[FedNode, FedNode]) -> None:
    _, jp = pair
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        jp.cli_json("partners", "add", "BAD", "--url", f"http://127.0.0.1:{server.server_port}/root/",
                    "--map", "shared=c:pull", "--token", "t")
        run = sync(jp, "BAD", check=False)["runs"][0]
    finally:
        server.shutdown()
    assert run["pulled"] == 1 and run["quarantined"] == 1  # the good object of the page is kept
    assert "not JSON" in run["error"]
    shown = jp.cli_json("partners", "show", "BAD")
    assert shown["status"]["state"] == "backoff"
    assert [q["id"] for q in shown["quarantine"]] == ["indicator--not-a-uuid"]
    # The cursor moved past the page that held the poison: it is not fetched again.
    position = json.loads(shown["cursors"][0]["position"])
    assert position["after"] is not None and position["next"] is None
