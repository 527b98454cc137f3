"""A foreign TAXII 2.1 server (medallion, the OASIS reference) as a partner, and the worker in ``serve``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.federation.helpers import (
    add_partner,
    grant_partner,
    indicator,
    make_fed_node,
    poll,
    start_medallion,
)


def test_pull_from_medallion(tmp_path: Path) -> None:
    producer = f"identity--{uuid.uuid4()}"
    objects = [o for _ in range(6) for o in indicator(producer, versions=2)]
    process, port, collection = start_medallion(tmp_path / "m", objects)
    try:
        jp = make_fed_node(tmp_path, "JP", "JPN")
        jp.cli_json("partners", "add", "OASIS", "--url", f"http://127.0.0.1:{port}/api1/",
                    "--map", f"shared={collection}:pull", "--basic", "sync:secret", "--page-size", "5")
        first = json.loads(jp.cli("sync", "OASIS", "--json").stdout)["runs"][0]
        second = json.loads(jp.cli("sync", "OASIS", "--json").stdout)["runs"][0]
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert first["error"] is None and first["pulled"] == 12  # every version, across pages of 5
    assert second["pulled"] == 0
    stored = jp.versions()
    assert {sid for sid, _ in stored} == {o["id"] for o in objects}
    assert len(stored) == 12


def test_serve_runs_one_scheduled_worker_that_syncs(tmp_path: Path) -> None:
    uk = make_fed_node(tmp_path, "UK", "GBR")
    jp = make_fed_node(tmp_path, "JP", "JPN")
    grant_partner(uk, jp, "JPN")
    uk.start()
    try:
        uk.post(indicator(uk.identity, versions=2))
        add_partner(jp, uk, "pull")
        jp.start(worker=True)
        # The run is over when its outcome is recorded, not when its first page is visible: pages commit
        # before the run records "ok" and its totals (waiting for the versions alone raced with that).
        status = poll(lambda: (found := jp.cli_json("partners", "show", "UK")["status"])["last_success"] and found,
                      what="the worker's first successful run")
        assert status["state"] == "ok" and status["pulled"] == 2 and status["last_error"] is None
        assert len(jp.versions()) == 2
        holders = jp.sql("SELECT holder FROM fed_lease WHERE name = 'sync-worker'")
        assert len(holders) == 1
    finally:
        jp.stop()
        uk.stop()
    # The worker leaves with its server and gives the lease back.
    poll(lambda: jp.sql("SELECT holder FROM fed_lease") == [], deadline_s=30, what="the worker's exit")
