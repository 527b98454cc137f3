"""An alert from a partner sync: a real producer node serves an indicator about a protected domain, the
host's `kizuna sync` pulls it into the operation's intel collection, and the alert is stored by that
very sync (its ingest listener), before anything reads alerts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from kizuna.store import open_store
from tests.federation.helpers import TLP_CLEAR, grant_partner, make_fed_node, sync
from tests.ops.conftest import indicator, sighting

TODAY = dt.datetime.now(dt.UTC).date()


def test_a_pulled_object_raises_its_alert_during_the_sync(tmp_path: Path) -> None:
    uk = make_fed_node(tmp_path, "UK", "GBR")
    host = make_fed_node(tmp_path, "Host", "JPN")
    grant_partner(uk, host, "JPN")
    host.cli_json("orgs", "create", "UK national CERT", "--country", "GBR")
    host.cli_json("ops", "create", "Sync Cup", "--from", str(TODAY), "--to", str(TODAY + dt.timedelta(days=3)),
                  "--partner", "UK national CERT")
    host.cli_json("ops", "assets", "add", "sync-cup", "--domain", "games2027.example")
    uk.start()
    try:
        host.cli_json("partners", "add", "UK", "--url", uk.api_root_url, "--map",
                      f"sync-cup-intel={uk.collection}:pull", "--token", uk.tokens["Host"])
        bad = indicator("pay.games2027.example", marking=TLP_CLEAR, created_by_ref=uk.identity)
        calm = indicator("calm.example", marking=TLP_CLEAR, created_by_ref=uk.identity)
        uk.post([bad, calm, sighting(bad["id"], marking=TLP_CLEAR, created_by_ref=uk.identity)])
        assert sync(host, "UK")["runs"][0]["error"] is None
    finally:
        uk.stop()
    store = open_store(host.store_url)
    try:
        stored = {(row.stix_id, row.rule, row.object_type) for row in store.ops_alerts("sync-cup")}
    finally:
        store.close()
    assert (bad["id"], "containment", "indicator") in stored  # judged by the sync itself
    assert {kind for _, rule, kind in stored if rule == "relationship"} == {"sighting"}
    alerts = host.cli_json("ops", "alerts", "sync-cup")["alerts"]
    assert [(a["object_id"], a["rule"]) for a in alerts][0] == (bad["id"], "containment")
    assert calm["id"] not in {a["object_id"] for a in alerts}
